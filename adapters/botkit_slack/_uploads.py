"""A reply's files (a spoken answer's audio) shared in Slack through the external upload
flow, as Slack documents it:

1. ``files.getUploadURLExternal`` (``filename``, ``length`` in bytes) answers an
   ``upload_url`` and a ``file_id``;
2. the bytes are POSTed to ``upload_url`` (no token: the URL is the permission), which
   answers 200;
3. ``files.completeUploadExternal`` (``files=[{"id", "title"}]``, ``channel_id``,
   ``thread_ts``) shares the file into the conversation.

Steps 1 and 3 go through :class:`SlackAPI` (pacing, rate limits, errors mapped there).
"""

from __future__ import annotations

import aiohttp

from botkit import (
    Attachment,
    RateLimitError,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit_slack._api import SlackAPI
from botkit_slack._errors import SERVICE

__all__ = ["upload"]


async def upload(
    api: SlackAPI,
    session: aiohttp.ClientSession,
    attachment: Attachment,
    channel: str,
    thread_ts: str | None,
) -> str:
    """Share one file in a conversation (its thread, if any); the file's id.

    Raises:
        RequestRejectedError: the file has no bytes (``no_file_data``), Slack refused a
            step (``ok: false``), or the upload URL is gone (``upload_failed``).
        RateLimitError: a step was rate limited.
        ServiceUnavailableError: the network failed or Slack answered 5xx.
    """
    data, name = attachment.data, attachment.name
    if not data:
        raise RequestRejectedError(SERVICE, f"{name} has no bytes to upload", code="no_file_data")
    issued = await api.call(
        "files.getUploadURLExternal",
        channel,
        lambda: api.client.files_getUploadURLExternal(filename=name, length=len(data)),
    )
    upload_url, file_id = issued.get("upload_url"), issued.get("file_id")
    if not isinstance(upload_url, str) or not isinstance(file_id, str):
        raise RequestRejectedError(
            SERVICE, "files.getUploadURLExternal answered without upload_url or file_id"
        )
    await _post_bytes(session, upload_url, data, name, api.settings.timeout)
    await api.call(
        "files.completeUploadExternal",
        channel,
        lambda: api.client.files_completeUploadExternal(
            files=[{"id": file_id, "title": name}], channel_id=channel, thread_ts=thread_ts
        ),
    )
    return file_id


async def _post_bytes(
    session: aiohttp.ClientSession, url: str, data: bytes, name: str, seconds: float
) -> None:
    """Step 2: the raw bytes to the upload URL (the upload URL itself is the secret:
    it is never logged nor put in an error)."""
    try:
        async with session.post(
            url,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            status = response.status
            retry_after = _seconds(response.headers.get("Retry-After"))
    except TimeoutError:
        raise ServiceUnavailableError(SERVICE, f"uploading {name} timed out") from None
    except aiohttp.ClientError as exc:
        raise ServiceUnavailableError(
            SERVICE, f"uploading {name} failed ({type(exc).__name__})"
        ) from None
    if status == 200:
        return
    if status == 429:
        raise RateLimitError(SERVICE, f"uploading {name} is rate limited", retry_after=retry_after)
    if status >= 500:
        raise ServiceUnavailableError(SERVICE, f"uploading {name}: HTTP {status}", status=status)
    raise RequestRejectedError(
        SERVICE, f"uploading {name}: HTTP {status}", status=status, code="upload_failed"
    )


def _seconds(value: str | None) -> float:
    try:
        return max(float(value or 1), 0.0)
    except ValueError:
        return 1.0
