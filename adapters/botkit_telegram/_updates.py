"""Reading one Bot API update into a botkit ``Message``, or deciding to skip it.

The update's message is read through python-telegram-bot's typed ``Update`` where PTB
takes the payload, and defensively from the plain JSON where it does not (older payloads
without ``is_bot`` or ``file_unique_id``, shapes newer than PTB): an update PTB refuses
must neither crash the adapter nor block the offset (``_reading``). Whom to answer and
what to hand the core is decided here, once, from what either reader found.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botkit import ConversationRef, Message
from botkit_telegram._reading import (
    EntityFacts,
    MessageFacts,
    NotReadable,
    facts_from_json,
    facts_from_ptb,
)
from botkit_telegram._settings import TelegramSettings

__all__ = ["Accept", "BotIdentity", "Ignore", "Unsupported", "read_message", "read_update"]

log = logging.getLogger(__name__)

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,64})(?:@([A-Za-z0-9_]{1,64}))?(?=\s|$)")
_GROUP_TYPES = frozenset({"group", "supergroup"})
# files sent without a caption that still reach the core, whatever media_without_text
# says: a plugin may read them (``ctx.fetch_attachment``; the documents plugin summarises
# text and PDF files, the voice plugin transcribes voice notes and audio)
_FILES_FOR_PLUGINS = frozenset({"document", "voice", "audio"})


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
    """Acknowledge the update and do nothing with it: ``reason`` says why, for a log;
    ``code`` is its category, for the metrics."""

    reason: str
    code: str = "other"


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A message with nothing to read (a sticker, a voice note): answer it, accept nothing."""

    conversation: ConversationRef
    message_id: int
    kind: str
    chat_type: str


Decision = Accept | Ignore | Unsupported


def read_message(update: Mapping[str, Any]) -> MessageFacts | None:
    """The update's message: PTB's reading where it takes the payload, else the JSON's.

    Returns ``None`` for an update without a message.

    Raises:
        NotReadable: neither reader could take it.
    """
    try:
        return facts_from_ptb(update)
    except NotReadable as refused:
        log.debug("update %s: %s; reading it as JSON", update.get("update_id"), refused)
    return facts_from_json(update)


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
    try:
        facts = read_message(update)
    except NotReadable as exc:
        return Ignore(str(exc), "unreadable")
    if facts is None:
        kind = next((k for k in update if k != "update_id"), "empty")
        # edited messages are not answered again: the first answer stands, and a second
        # one would read as a double reply
        return Ignore(f"{kind} updates are not handled", "update_type")
    chat_type = facts.chat_type
    if chat_type != "private" and chat_type not in _GROUP_TYPES:
        return Ignore(f"messages in a {chat_type} are not handled", "chat_type")
    sender = facts.sender
    if sender is None:
        return Ignore("a message without a sender", "no_sender")
    if sender.id == str(me.id):
        return Ignore("the bot's own message", "own_message")
    if not _allowed(settings, sender.id, facts.chat_id):
        return Ignore(
            f"user {sender.id} in chat {facts.chat_id} is not on the allowlist", "not_allowed"
        )

    text = facts.text
    is_command = False
    command = _COMMAND.match(text)
    if command is not None:
        target = command.group(2)
        if target is not None and target.lower() != me.username.lower():
            return Ignore(f"a command for @{target}", "other_bot")
        is_command = True
        text = f"/{command.group(1)}{text[command.end() :]}"
    is_mention = _mentions(text, facts.entities, me)
    reply_to_bot = _replies_to_bot(facts, me)
    addressed = chat_type == "private" or is_command or is_mention or reply_to_bot
    if not addressed and not settings.group_context:
        return Ignore("group chatter that does not address the bot", "group_chatter")
    if is_mention:
        text = _strip_leading_mention(text, me)

    conversation = ConversationRef(
        channel=channel,
        chat_id=str(facts.chat_id),
        thread_id=str(facts.thread_id) if facts.thread_id is not None else None,
    )
    content = facts.content
    if not text.strip():
        if content is None:
            return Ignore("a service message", "service_message")
        if not addressed:
            return Ignore(f"a {content} in group chatter", "group_chatter")
        if settings.media_without_text == "reply" and content not in _FILES_FOR_PLUGINS:
            return Unsupported(conversation, facts.message_id, content, chat_type)

    metadata: dict[str, Any] = {
        "chat_type": chat_type,
        "message_id": facts.message_id,
        "update_id": update.get("update_id"),
        "addressed": addressed,
        "is_command": is_command,
        "is_mention": is_mention,
        "reply_to_bot": reply_to_bot,
    }
    for key, value in (
        ("chat_title", facts.chat_title),
        ("username", facts.username),
        ("language_code", facts.language_code),
    ):
        if value:
            metadata[key] = value
    if facts.files:
        metadata["files"] = [dict(f) for f in facts.files]
    if not text.strip() and content is not None and content not in _FILES_FOR_PLUGINS:
        metadata["unsupported"] = content
    return Accept(
        Message(
            conversation=conversation,
            sender=sender,
            text=text,
            external_id=f"{facts.chat_id}:{facts.message_id}",
            attachments=facts.attachments,
            raw=dict(update),
            metadata=metadata,
        )
    )


def _allowed(settings: TelegramSettings, user_id: str, chat_id: int) -> bool:
    if not settings.allowed_users and not settings.allowed_chats:
        return True
    return chat_id in settings.allowed_chats or (
        user_id.lstrip("-").isdigit() and int(user_id) in settings.allowed_users
    )


def _entity_text(text: str, entity: EntityFacts) -> str:
    """The text an entity covers; offsets count UTF-16 code units, not characters."""
    units = text.encode("utf-16-le")
    end = entity.offset + entity.length
    return units[entity.offset * 2 : end * 2].decode("utf-16-le", errors="replace")


def _mentions(text: str, entities: tuple[EntityFacts, ...], me: BotIdentity) -> bool:
    handle = f"@{me.username}".lower()
    for entity in entities:
        if entity.kind == "mention" and _entity_text(text, entity).lower() == handle:
            return True
        if entity.kind == "text_mention" and entity.user_id == me.id:
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


def _replies_to_bot(facts: MessageFacts, me: BotIdentity) -> bool:
    if facts.replied_message_id is None and facts.replied_from_id is None:
        return False
    # in a forum topic every message "replies" to the topic's opening service message
    if facts.thread_id is not None and facts.replied_message_id == facts.thread_id:
        return False
    return facts.replied_from_id == me.id
