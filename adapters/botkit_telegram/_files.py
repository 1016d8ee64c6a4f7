"""Files: one a user sent fetched when a plugin asks (``ctx.fetch_attachment``), and a
reply's files uploaded (``sendVoice``, ``sendAudio``, ``sendDocument``).

A message's attachments carry no bytes: each names its Telegram ``file_id`` in its
``url`` (``telegram-file:<file_id>``, never the bot token). Downloading is the Bot API's
two steps: ``getFile`` gives a ``file_path`` (valid for at least an hour, so the id is
what is kept), then the bytes come from ``<api_url>/file/bot<token>/<file_path>``. The
Bot API hands bots files of up to 20 MB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Bot, InputFile
from telegram import Message as TgMessage
from telegram import error as tg

from botkit import Attachment, RequestRejectedError
from botkit_telegram._errors import SERVICE, service_error

__all__ = ["FILE_SCHEME", "MAX_DOWNLOAD", "download", "file_url", "uploader"]

FILE_SCHEME = "telegram-file:"
MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API's limit for getFile


def file_url(file_id: object) -> str | None:
    """The ``url`` an attachment carries for ``file_id`` (``None`` without one)."""
    return f"{FILE_SCHEME}{file_id}" if isinstance(file_id, str) and file_id else None


async def download(bot: Bot, attachment: Attachment, max_bytes: int | None) -> bytes:
    """The bytes of ``attachment``, at most ``max_bytes`` (and the Bot API's 20 MB).

    Raises:
        RequestRejectedError: not a Telegram file (``unknown_attachment``), larger than
            the limit (``too_large``), or refused by Telegram.
        ServiceError: Telegram could not be reached.
    """
    url = attachment.url or ""
    if not url.startswith(FILE_SCHEME) or len(url) == len(FILE_SCHEME):
        raise RequestRejectedError(
            SERVICE, f"{attachment.name} is not a Telegram file", code="unknown_attachment"
        )
    limit = min(max_bytes, MAX_DOWNLOAD) if max_bytes is not None else MAX_DOWNLOAD
    _check_size(attachment.name, attachment.size, limit)
    try:
        file = await bot.get_file(url[len(FILE_SCHEME) :])
        _check_size(attachment.name, file.file_size, limit)
        data = bytes(await file.download_as_bytearray())
    except tg.BadRequest as exc:
        if "too big" in exc.message.lower():
            raise _too_large(attachment.name, limit) from None
        raise service_error(exc, "getFile") from exc
    except tg.TelegramError as exc:
        raise service_error(exc, "download") from exc
    _check_size(attachment.name, len(data), limit)
    return data


def uploader(
    bot: Bot, attachment: Attachment, chat_id: int, thread_id: int | None
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


def _check_size(name: str, size: int | None, limit: int) -> None:
    if size is not None and size > limit:
        raise _too_large(name, limit)


def _too_large(name: str, limit: int) -> RequestRejectedError:
    return RequestRejectedError(
        SERVICE, f"{name} is over the limit ({limit:,} bytes)", code="too_large"
    )
