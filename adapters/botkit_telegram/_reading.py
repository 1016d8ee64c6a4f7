"""The facts of one update's message, read from PTB's typed ``Update`` or, where PTB
refuses the shape, from the plain JSON.

``telegram.Update.de_json`` is the reader of choice: typed, and kept current with the
Bot API by python-telegram-bot. It refuses some real payloads (older ones without
``from.is_bot`` or ``file_unique_id``, say), and one update it cannot read must neither
crash the adapter nor block the offset; the defensive dict reader takes those. Both
produce the same :class:`MessageFacts`, from which ``_updates`` decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from telegram import Message as TgMessage
from telegram import Update

from botkit import Attachment, Sender
from botkit_telegram._files import file_url

__all__ = [
    "EntityFacts",
    "MessageFacts",
    "NotReadable",
    "facts_from_json",
    "facts_from_ptb",
]

# content a user sends on purpose; anything else without text is a service message
_CONTENT_KINDS = (
    "photo",
    "document",
    "voice",
    "audio",
    "video",
    "video_note",
    "animation",
    "sticker",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "game",
    "story",
)
# file name and type for files Telegram sends without them
_FILE_DEFAULTS = {
    "document": ("document", "application/octet-stream"),
    "voice": ("voice.ogg", "audio/ogg"),
    "audio": ("audio.mp3", "audio/mpeg"),
    "video": ("video.mp4", "video/mp4"),
    "video_note": ("video_note.mp4", "video/mp4"),
    "animation": ("animation.mp4", "video/mp4"),
}


class NotReadable(ValueError):
    """The reader cannot take this payload; the message says why."""


@dataclass(frozen=True, slots=True)
class EntityFacts:
    """A mention-like entity of the text; offsets count UTF-16 code units."""

    kind: str
    offset: int
    length: int
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the adapter reads from a message, whichever reader read it."""

    chat_id: int
    message_id: int
    chat_type: str
    chat_title: str | None
    sender: Sender | None
    username: str | None
    language_code: str | None
    text: str
    entities: tuple[EntityFacts, ...]
    replied_from_id: int | None
    replied_message_id: int | None
    thread_id: int | None  # only for a message in a forum topic
    content: str | None
    attachments: tuple[Attachment, ...]
    files: tuple[dict[str, Any], ...]


# -- python-telegram-bot's Update ---------------------------------------------------------


def facts_from_ptb(update: Mapping[str, Any]) -> MessageFacts | None:
    """The facts read through ``Update.de_json``; ``None`` for an update without a message.

    Raises:
        NotReadable: PTB refused the payload (read it with :func:`facts_from_json`).
    """
    try:
        message = Update.de_json(dict(update), None).message
        return None if message is None else _ptb_facts(message)
    except Exception as exc:  # whatever PTB raises on a shape it cannot take
        raise NotReadable(f"python-telegram-bot refused it ({type(exc).__name__})") from exc


def _ptb_facts(message: TgMessage) -> MessageFacts:
    chat, user = message.chat, message.from_user
    if message.text is not None:
        text, entities = message.text, message.entities
    else:
        text, entities = message.caption or "", message.caption_entities
    replied = message.reply_to_message
    replied_user = replied.from_user if replied is not None else None
    attachments, files = _ptb_files(message)
    return MessageFacts(
        chat_id=chat.id,
        message_id=message.message_id,
        chat_type=str(chat.type),
        chat_title=chat.title,
        sender=_ptb_sender(message),
        username=user.username if user is not None else None,
        language_code=user.language_code if user is not None else None,
        text=text,
        entities=tuple(
            EntityFacts(str(e.type), e.offset, e.length, e.user.id if e.user else None)
            for e in entities
        ),
        replied_from_id=replied_user.id if replied_user is not None else None,
        replied_message_id=replied.message_id if replied is not None else None,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        content=next((k for k in _CONTENT_KINDS if getattr(message, k, None)), None),
        attachments=attachments,
        files=files,
    )


def _ptb_sender(message: TgMessage) -> Sender | None:
    """The author; an anonymous admin or a linked channel speaks as its chat."""
    if message.sender_chat is not None:
        return Sender(id=str(message.sender_chat.id), name=message.sender_chat.title)
    user = message.from_user
    if user is None:
        return None
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or user.username
    return Sender(id=str(user.id), name=name or None, is_bot=user.is_bot)


def _ptb_files(message: TgMessage) -> tuple[tuple[Attachment, ...], tuple[dict[str, Any], ...]]:
    found: list[tuple[str, Any, str, str]] = []
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.file_size or 0, p.width or 0))
        found.append(("photo", largest, "photo.jpg", "image/jpeg"))
    for kind, (name, content_type) in _FILE_DEFAULTS.items():
        item = getattr(message, kind)
        if item is not None:
            found.append((kind, item, name, content_type))
    sticker = message.sticker
    if sticker is not None:
        found.append(("sticker", sticker, *_sticker_file(sticker.is_animated, sticker.is_video)))
    return _described(
        (kind, _file_fields(item), name, content_type) for kind, item, name, content_type in found
    )


def _file_fields(item: Any) -> dict[str, Any]:
    """A PTB file object's fields, under their Bot API names."""
    return {
        "file_name": getattr(item, "file_name", None),
        "mime_type": getattr(item, "mime_type", None),
        "file_size": item.file_size,
        "file_id": item.file_id,
        "file_unique_id": item.file_unique_id,
    }


# -- the plain JSON -----------------------------------------------------------------------


def facts_from_json(update: Mapping[str, Any]) -> MessageFacts | None:
    """The facts read from the dict itself, defensively; ``None`` for an update without
    a message.

    Raises:
        NotReadable: the message lacks what every message has (a chat id, a message id).
    """
    message = update.get("message")
    if not isinstance(message, Mapping):
        return None
    chat = _mapping(message.get("chat"))
    chat_id, message_id = chat.get("id"), message.get("message_id")
    if not isinstance(chat_id, int) or not isinstance(message_id, int):
        raise NotReadable("a message without chat id or message id")
    text, entities = message.get("text"), message.get("entities")
    if not isinstance(text, str):
        text, entities = message.get("caption"), message.get("caption_entities")
    user = _mapping(message.get("from"))
    replied = _mapping(message.get("reply_to_message"))
    thread_id = message.get("message_thread_id") if message.get("is_topic_message") else None
    attachments, files = _json_files(message)
    return MessageFacts(
        chat_id=chat_id,
        message_id=message_id,
        chat_type=str(chat.get("type", "private")),
        chat_title=_str(chat.get("title")),
        sender=_json_sender(message),
        username=_str(user.get("username")),
        language_code=_str(user.get("language_code")),
        text=text if isinstance(text, str) else "",
        entities=tuple(
            EntityFacts(
                str(e.get("type")),
                e["offset"] if isinstance(e.get("offset"), int) else 0,
                e["length"] if isinstance(e.get("length"), int) else 0,
                _int(_mapping(e.get("user")).get("id")),
            )
            for e in (entities if isinstance(entities, list) else [])
            if isinstance(e, Mapping)
        ),
        replied_from_id=_int(_mapping(replied.get("from")).get("id")),
        replied_message_id=_int(replied.get("message_id")),
        thread_id=_int(thread_id),
        content=next((k for k in _CONTENT_KINDS if k in message), None),
        attachments=attachments,
        files=files,
    )


def _json_sender(message: Mapping[str, Any]) -> Sender | None:
    sender_chat = _mapping(message.get("sender_chat"))
    if isinstance(sender_chat.get("id"), int):
        return Sender(id=str(sender_chat["id"]), name=_str(sender_chat.get("title")))
    user = _mapping(message.get("from"))
    user_id = user.get("id")
    if not isinstance(user_id, int):
        return None
    parts = [user.get("first_name"), user.get("last_name")]
    name = " ".join(p for p in parts if isinstance(p, str) and p) or user.get("username")
    return Sender(id=str(user_id), name=_str(name), is_bot=user.get("is_bot") is True)


def _json_files(
    message: Mapping[str, Any],
) -> tuple[tuple[Attachment, ...], tuple[dict[str, Any], ...]]:
    found: list[tuple[str, Mapping[str, Any], str, str]] = []
    photos = message.get("photo")
    sizes = [p for p in photos if isinstance(p, Mapping)] if isinstance(photos, list) else []
    if sizes:
        largest = max(sizes, key=lambda p: (p.get("file_size") or 0, p.get("width") or 0))
        found.append(("photo", largest, "photo.jpg", "image/jpeg"))
    for kind, (name, content_type) in _FILE_DEFAULTS.items():
        item = message.get(kind)
        if isinstance(item, Mapping):
            found.append((kind, item, name, content_type))
    sticker = message.get("sticker")
    if isinstance(sticker, Mapping):
        kind_of = _sticker_file(bool(sticker.get("is_animated")), bool(sticker.get("is_video")))
        found.append(("sticker", sticker, *kind_of))
    return _described(found)


# -- shared -------------------------------------------------------------------------------


def _sticker_file(is_animated: bool, is_video: bool) -> tuple[str, str]:
    if is_animated:
        return "sticker.tgs", "application/x-tgsticker"
    if is_video:
        return "sticker.webm", "video/webm"
    return "sticker.webp", "image/webp"


def _described(
    found: Iterable[tuple[str, Mapping[str, Any], str, str]],
) -> tuple[tuple[Attachment, ...], tuple[dict[str, Any], ...]]:
    """Attachments and their Telegram file ids, in the same order, from ``(kind, the
    file's fields under their Bot API names, default name, default type)``."""
    attachments: list[Attachment] = []
    files: list[dict[str, Any]] = []
    for kind, fields, name, content_type in found:
        file_name, mime_type, size = (
            fields.get("file_name"),
            fields.get("mime_type"),
            fields.get("file_size"),
        )
        attachments.append(
            Attachment(
                name=file_name if isinstance(file_name, str) and file_name else name,
                content_type=mime_type if isinstance(mime_type, str) else content_type,
                size=size if isinstance(size, int) else None,
                url=file_url(fields.get("file_id")),  # fetched on demand: fetch_attachment
            )
        )
        files.append(
            {
                "kind": kind,
                "file_id": fields.get("file_id"),
                "file_unique_id": fields.get("file_unique_id"),
            }
        )
    return tuple(attachments), tuple(files)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
