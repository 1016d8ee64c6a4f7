"""Reading one Bot API update (plain JSON) into a botkit ``Message``, or deciding to skip it.

Updates are read as dicts, defensively, rather than through ``telegram.Update``: an
update whose shape PTB does not expect (older payloads without ``is_bot`` or
``file_unique_id``, newer fields) must neither crash the adapter nor block the offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botkit import Attachment, ConversationRef, Message, Sender
from botkit_telegram._settings import TelegramSettings

__all__ = ["Accept", "BotIdentity", "Ignore", "Unsupported", "read_update"]

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,64})(?:@([A-Za-z0-9_]{1,64}))?(?=\s|$)")
_GROUP_TYPES = frozenset({"group", "supergroup"})
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


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, from ``getMe``: to spot mentions, replies and ``/cmd@name``."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Accept:
    """Hand this message to the inbox."""

    message: Message


@dataclass(frozen=True, slots=True)
class Ignore:
    """Acknowledge the update and do nothing with it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A message with nothing to read (a sticker, a voice note): answer it, accept nothing."""

    conversation: ConversationRef
    message_id: int
    kind: str
    chat_type: str


Decision = Accept | Ignore | Unsupported


def read_update(
    update: Mapping[str, Any], *, channel: str, me: BotIdentity, settings: TelegramSettings
) -> Decision:
    """Decide what one update means for the bot.

    Args:
        update: the update as the Bot API sent it.
        channel: the adapter's name, the ``channel`` of the message.
        me: the bot itself.
        settings: allowlists, group and media behaviour.
    """
    message = update.get("message")
    if not isinstance(message, Mapping):
        kind = next((k for k in update if k != "update_id"), "empty")
        # edited messages are not answered again: the first answer stands, and a second
        # one would read as a double reply
        return Ignore(f"{kind} updates are not handled")
    chat = _mapping(message.get("chat"))
    chat_id = chat.get("id")
    message_id = message.get("message_id")
    if not isinstance(chat_id, int) or not isinstance(message_id, int):
        return Ignore("a message without chat id or message id")
    chat_type = str(chat.get("type", "private"))
    if chat_type != "private" and chat_type not in _GROUP_TYPES:
        return Ignore(f"messages in a {chat_type} are not handled")
    sender = _sender(message)
    if sender is None:
        return Ignore("a message without a sender")
    if sender.id == str(me.id):
        return Ignore("the bot's own message")
    if not _allowed(settings, sender.id, chat_id):
        return Ignore(f"user {sender.id} in chat {chat_id} is not on the allowlist")

    text = message.get("text")
    entities = message.get("entities")
    if not isinstance(text, str):
        text = message.get("caption")
        entities = message.get("caption_entities")
    text = text if isinstance(text, str) else ""
    entity_list = (
        [e for e in entities if isinstance(e, Mapping)] if isinstance(entities, list) else []
    )

    is_command = False
    command = _COMMAND.match(text)
    if command is not None:
        target = command.group(2)
        if target is not None and target.lower() != me.username.lower():
            return Ignore(f"a command for @{target}")
        is_command = True
        text = f"/{command.group(1)}{text[command.end() :]}"
    is_mention = _mentions(text, entity_list, me)
    reply_to_bot = _replies_to_bot(message, me)
    addressed = chat_type == "private" or is_command or is_mention or reply_to_bot
    if not addressed and not settings.group_context:
        return Ignore("group chatter that does not address the bot")
    if is_mention:
        text = _strip_leading_mention(text, me)

    thread_id = message.get("message_thread_id") if message.get("is_topic_message") else None
    conversation = ConversationRef(
        channel=channel,
        chat_id=str(chat_id),
        thread_id=str(thread_id) if isinstance(thread_id, int) else None,
    )
    content = next((k for k in _CONTENT_KINDS if k in message), None)
    if not text.strip():
        if content is None:
            return Ignore("a service message")
        if not addressed:
            return Ignore(f"a {content} in group chatter")
        if settings.media_without_text == "reply":
            return Unsupported(conversation, message_id, content, chat_type)

    attachments, files = _attachments(message)
    metadata: dict[str, Any] = {
        "chat_type": chat_type,
        "message_id": message_id,
        "update_id": update.get("update_id"),
        "addressed": addressed,
        "is_command": is_command,
        "is_mention": is_mention,
        "reply_to_bot": reply_to_bot,
    }
    _copy(metadata, "chat_title", chat.get("title"))
    _copy(metadata, "username", _mapping(message.get("from")).get("username"))
    _copy(metadata, "language_code", _mapping(message.get("from")).get("language_code"))
    if files:
        metadata["files"] = files
    if not text.strip() and content is not None:
        metadata["unsupported"] = content
    return Accept(
        Message(
            conversation=conversation,
            sender=sender,
            text=text,
            external_id=f"{chat_id}:{message_id}",
            attachments=attachments,
            raw=dict(update),
            metadata=metadata,
        )
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _copy(target: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, str) and value:
        target[key] = value


def _sender(message: Mapping[str, Any]) -> Sender | None:
    """The author; an anonymous admin or a linked channel speaks as its chat."""
    sender_chat = _mapping(message.get("sender_chat"))
    if isinstance(sender_chat.get("id"), int):
        title = sender_chat.get("title")
        return Sender(id=str(sender_chat["id"]), name=title if isinstance(title, str) else None)
    user = _mapping(message.get("from"))
    user_id = user.get("id")
    if not isinstance(user_id, int):
        return None
    parts = [user.get("first_name"), user.get("last_name")]
    name = " ".join(p for p in parts if isinstance(p, str) and p) or user.get("username")
    return Sender(
        id=str(user_id),
        name=name if isinstance(name, str) and name else None,
        is_bot=user.get("is_bot") is True,
    )


def _allowed(settings: TelegramSettings, user_id: str, chat_id: int) -> bool:
    if not settings.allowed_users and not settings.allowed_chats:
        return True
    return chat_id in settings.allowed_chats or (
        user_id.lstrip("-").isdigit() and int(user_id) in settings.allowed_users
    )


def _entity_text(text: str, entity: Mapping[str, Any]) -> str:
    """The text an entity covers; offsets count UTF-16 code units, not characters."""
    offset, length = entity.get("offset"), entity.get("length")
    if not isinstance(offset, int) or not isinstance(length, int):
        return ""
    units = text.encode("utf-16-le")
    return units[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="replace")


def _mentions(text: str, entities: list[Mapping[str, Any]], me: BotIdentity) -> bool:
    handle = f"@{me.username}".lower()
    for entity in entities:
        kind = entity.get("type")
        if kind == "mention" and _entity_text(text, entity).lower() == handle:
            return True
        if kind == "text_mention" and _mapping(entity.get("user")).get("id") == me.id:
            return True
    if entities:
        return False
    # payloads without entities (hand-written, forwarded through other tools)
    return re.search(rf"(?<!\w){re.escape(handle)}(?!\w)", text, re.IGNORECASE) is not None


def _strip_leading_mention(text: str, me: BotIdentity) -> str:
    """``"@bot what is up"`` reads better to the model as ``"what is up"``."""
    handle = f"@{me.username}"
    if text[: len(handle)].lower() == handle.lower():
        rest = text[len(handle) :].lstrip(" ,:")
        return rest or text
    return text


def _replies_to_bot(message: Mapping[str, Any], me: BotIdentity) -> bool:
    replied = _mapping(message.get("reply_to_message"))
    if not replied:
        return False
    # in a forum topic every message "replies" to the topic's opening service message
    if message.get("is_topic_message") and replied.get("message_id") == message.get(
        "message_thread_id"
    ):
        return False
    return _mapping(replied.get("from")).get("id") == me.id


def _attachments(
    message: Mapping[str, Any],
) -> tuple[tuple[Attachment, ...], list[dict[str, Any]]]:
    """The files of a message, and their Telegram file ids in the same order."""
    found: list[tuple[str, Mapping[str, Any], str, str]] = []
    photos = message.get("photo")
    if isinstance(photos, list) and photos:
        sizes = [p for p in photos if isinstance(p, Mapping)]
        if sizes:
            largest = max(sizes, key=lambda p: (p.get("file_size") or 0, p.get("width") or 0))
            found.append(("photo", largest, "photo.jpg", "image/jpeg"))
    defaults = {
        "document": ("document", "application/octet-stream"),
        "voice": ("voice.ogg", "audio/ogg"),
        "audio": ("audio.mp3", "audio/mpeg"),
        "video": ("video.mp4", "video/mp4"),
        "video_note": ("video_note.mp4", "video/mp4"),
        "animation": ("animation.mp4", "video/mp4"),
    }
    for kind, (name, content_type) in defaults.items():
        item = message.get(kind)
        if isinstance(item, Mapping):
            found.append((kind, item, name, content_type))
    sticker = message.get("sticker")
    if isinstance(sticker, Mapping):
        if sticker.get("is_animated"):
            found.append(("sticker", sticker, "sticker.tgs", "application/x-tgsticker"))
        elif sticker.get("is_video"):
            found.append(("sticker", sticker, "sticker.webm", "video/webm"))
        else:
            found.append(("sticker", sticker, "sticker.webp", "image/webp"))
    attachments: list[Attachment] = []
    files: list[dict[str, Any]] = []
    for kind, item, name, content_type in found:
        file_name, mime_type, size = (
            item.get("file_name"),
            item.get("mime_type"),
            item.get("file_size"),
        )
        attachments.append(
            Attachment(
                name=file_name if isinstance(file_name, str) and file_name else name,
                content_type=mime_type if isinstance(mime_type, str) else content_type,
                size=size if isinstance(size, int) else None,
            )
        )
        files.append(
            {
                "kind": kind,
                "file_id": item.get("file_id"),
                "file_unique_id": item.get("file_unique_id"),
            }
        )
    return tuple(attachments), files
