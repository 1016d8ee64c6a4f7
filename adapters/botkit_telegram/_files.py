"""Files: a user's voice note or document fetched on demand (``getFile``, then the file
endpoint), and a reply's files uploaded (``sendVoice``, ``sendAudio``, ``sendDocument``).

A message's attachment carries its Telegram ``file_id`` in its ``url``
(``telegram-file:<file_id>``): the Bot API hands out a download path only when asked,
and that path expires after an hour, so the id is what is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import telegram
from telegram import InputFile
from telegram import Message as TgMessage
from telegram import error as tg

from botkit import Attachment, RequestRejectedError
from botkit_telegram._errors import service_error

__all__ = ["FILE_URL", "MAX_DOWNLOAD", "download", "file_url", "uploader"]

FILE_URL = "telegram-file:"
MAX_DOWNLOAD = 20 * 1024 * 1024  # the largest file bots may download


def file_url(file_id: object) -> str | None:
    """The attachment URL naming a Telegram file."""
    return f"{FILE_URL}{file_id}" if isinstance(file_id, str) and file_id else None


async def download(bot: telegram.Bot, attachment: Attachment, max_bytes: int | None) -> bytes:
    """The bytes of a file a user sent.

    Raises:
        RequestRejectedError: not a Telegram file (``code`` ``"unknown_attachment"``),
            larger than ``max_bytes`` or than the 20 MB bots may download
            (``"too_large"``), or refused by Telegram.
        ServiceError: as Telegram's errors map.
    """
    url = attachment.url or ""
    if not url.startswith(FILE_URL):
        raise RequestRejectedError(
            "telegram", f"{attachment.name} is not a Telegram file", code="unknown_attachment"
        )
    limit = min(max_bytes or MAX_DOWNLOAD, MAX_DOWNLOAD)
    if attachment.size is not None and attachment.size > limit:
        raise _too_large(attachment.size, limit)
    try:
        found = await bot.get_file(url[len(FILE_URL) :])
        if found.file_size is not None and found.file_size > limit:
            raise _too_large(found.file_size, limit)
        data = bytes(await found.download_as_bytearray())
    except tg.BadRequest as exc:
        if "too big" in exc.message:
            raise _too_large(attachment.size, limit) from exc
        raise service_error(exc, "getFile") from exc
    except tg.TelegramError as exc:
        raise service_error(exc, "getFile") from exc
    if len(data) > limit:
        raise _too_large(len(data), limit)
    return data


def _too_large(size: int | None, limit: int) -> RequestRejectedError:
    what = f"{size / 1_048_576:.1f} MB" if size else "too large"
    return RequestRejectedError(
        "telegram",
        f"the file is {what}; at most {limit / 1_048_576:g} MB can be fetched",
        code="too_large",
    )


def uploader(
    bot: telegram.Bot, attachment: Attachment, chat_id: int, thread_id: int | None
) -> Callable[[], Awaitable[TgMessage]]:
    """The request that uploads one of a reply's files: an Ogg/Opus recording as a voice
    note, other audio as an audio file, anything else as a document."""
    upload = InputFile(attachment.data or b"", filename=attachment.name)
    kind = attachment.content_type.split(";")[0].strip().lower()
    if kind in ("audio/ogg", "audio/opus"):
        return lambda: bot.send_voice(chat_id, upload, message_thread_id=thread_id)
    if kind.startswith("audio/"):
        return lambda: bot.send_audio(chat_id, upload, message_thread_id=thread_id)
    return lambda: bot.send_document(chat_id, upload, message_thread_id=thread_id)
