"""Files shared in Slack, downloaded when a plugin asks (``ctx.fetch_attachment``).

Slack serves a file's bytes at its ``url_private_download`` to a request carrying the
bot token (``Authorization: Bearer xoxb-…``, scope ``files:read``). Without access it
does not answer 403: it redirects to its sign-in page, an HTML page with status 200.
So redirects are not followed (the token must never travel to another host), and an
HTML answer for a file that is not HTML counts as a refusal. The token is only ever
sent to Slack's file host (``https://files.slack.com``) or to the host of ``api_url``
(a test's fake).
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from botkit import (
    Attachment,
    RateLimitError,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit_slack._errors import SERVICE
from botkit_slack.settings import SlackSettings

__all__ = ["DEFAULT_MAX_BYTES", "FILE_HOST", "download"]

FILE_HOST = "https://files.slack.com"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024  # when the caller names no limit
_BLOCK = 65536


def _origin(url: URL) -> str:
    return str(url.origin()) if url.absolute and url.host else ""


async def download(
    session: aiohttp.ClientSession,
    settings: SlackSettings,
    attachment: Attachment,
    max_bytes: int | None,
) -> bytes:
    """The bytes of a Slack file, at most ``max_bytes``.

    Raises:
        RequestRejectedError: not a Slack file URL (``unknown_attachment``), too large
            (``too_large``), access refused (``file_access_denied``), gone
            (``attachment_gone``).
        RateLimitError: Slack answered 429.
        ServiceUnavailableError: the network failed or Slack answered 5xx.
    """
    name = attachment.name
    url = URL(attachment.url or "")
    allowed = {FILE_HOST, _origin(URL(settings.api_url))}
    if _origin(url) not in allowed:
        raise RequestRejectedError(
            SERVICE, f"{name} is not a file on Slack", code="unknown_attachment"
        )
    limit = max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES
    if attachment.size is not None and attachment.size > limit:
        raise _too_large(name, limit)
    headers = {"Authorization": f"Bearer {settings.bot_token.reveal()}"}
    try:
        async with session.get(
            url,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=settings.timeout),
        ) as response:
            _check(response, attachment)
            if response.content_length is not None and response.content_length > limit:
                raise _too_large(name, limit)
            body = bytearray()
            async for block in response.content.iter_chunked(_BLOCK):
                body += block
                if len(body) > limit:
                    raise _too_large(name, limit)
            return bytes(body)
    except TimeoutError:
        raise ServiceUnavailableError(SERVICE, f"downloading {name} timed out") from None
    except aiohttp.ClientError as exc:
        raise ServiceUnavailableError(
            SERVICE, f"downloading {name} failed ({type(exc).__name__})"
        ) from None


def _check(response: aiohttp.ClientResponse, attachment: Attachment) -> None:
    name, status = attachment.name, response.status
    if 300 <= status < 400 or (
        status == 200
        and response.content_type == "text/html"
        and not attachment.content_type.startswith("text/html")
    ):
        raise RequestRejectedError(
            SERVICE,
            f"Slack answered {name} with its sign-in page: the app needs the files:read scope",
            status=status,
            code="file_access_denied",
        )
    if status == 404:
        raise RequestRejectedError(SERVICE, f"{name} is gone", status=404, code="attachment_gone")
    if status == 429:
        wait = float(response.headers.get("Retry-After", "1") or 1)
        raise RateLimitError(SERVICE, f"downloading {name} is rate limited", retry_after=wait)
    if status >= 500:
        raise ServiceUnavailableError(SERVICE, f"downloading {name}: HTTP {status}", status=status)
    if status >= 400:
        raise RequestRejectedError(SERVICE, f"downloading {name}: HTTP {status}", status=status)


def _too_large(name: str, limit: int) -> RequestRejectedError:
    return RequestRejectedError(
        SERVICE, f"{name} is over the limit ({limit:,} bytes)", code="too_large"
    )
