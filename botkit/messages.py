"""Channel-neutral message types: what adapters produce and what handlers answer with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "Attachment",
    "ConversationRef",
    "Markup",
    "Message",
    "Reply",
    "Sender",
    "SentMessage",
]

Markup = Literal["plain", "markdown"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Where a conversation lives on its channel.

    Attributes:
        channel: the adapter's name (``"telegram"``, ``"slack"``...).
        chat_id: the channel's chat, channel, DM or mailbox identifier.
        thread_id: a thread, forum topic or email thread inside the chat, if any.
    """

    channel: str
    chat_id: str
    thread_id: str | None = None

    @property
    def key(self) -> str:
        """A stable string naming this conversation, unique across channels."""
        return f"{self.channel}:{self.chat_id}:{self.thread_id or ''}"


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote a message."""

    id: str
    name: str | None = None
    is_bot: bool = False

    @property
    def display_name(self) -> str:
        """The name to show the model: the display name when known, else the id."""
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message; ``data`` is only set when the adapter fetched it."""

    name: str
    content_type: str
    size: int | None = None
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Message:
    """An inbound message, as an adapter hands it to the inbox.

    Attributes:
        conversation: where it was written.
        sender: who wrote it.
        text: its text (a caption, an email's new text without quotes); may be empty.
        external_id: the channel's own id for this delivery, unique per channel: the
            inbox refuses a second message with the same one.
        attachments: files that came with it.
        raw: the channel's payload, kept in the store for debugging and plugins.
        metadata: channel facts plugins may use (``{"is_mention": True}``...).
        received_at: when botkit received it.
        id: the store's id, set once the inbox accepted it.
    """

    conversation: ConversationRef
    sender: Sender
    text: str
    external_id: str
    attachments: tuple[Attachment, ...] = ()
    raw: Mapping[str, Any] | None = field(default=None, repr=False)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    received_at: datetime = field(default_factory=_now)
    id: int | None = None

    @property
    def channel(self) -> str:
        """The adapter's name."""
        return self.conversation.channel


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler answers with.

    Attributes:
        text: the answer; Markdown when ``markup`` is ``"markdown"``, and adapters render
            it in their channel's dialect.
        markup: ``"markdown"`` (the model's usual output) or ``"plain"``.
        reply_to: the external id of the message this answers, when the channel can
            quote it.
        metadata: adapter hints (``{"subject": ...}`` for email...).
        attachments: files sent with the text, their ``data`` set (a spoken reply's
            audio): stored with the reply in the outbox until delivered, and uploaded by
            the adapter after the text (Telegram, Slack) or with it (email). The text may
            then be empty.
    """

    text: str
    markup: Markup = "markdown"
    reply_to: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message an adapter delivered, so it can be edited later.

    Attributes:
        conversation: where it went.
        external_id: the channel's id of the (last) message sent.
        text: the text it now shows.
        parts: the channel's ids of every piece, in order, when a long reply was split.
    """

    conversation: ConversationRef
    external_id: str
    text: str
    parts: tuple[str, ...] = ()
