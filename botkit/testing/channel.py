"""``InMemoryChannel``: a channel that lives in the test, and the replies it records."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botkit.adapter import Adapter, Capabilities
from botkit.inbox import Inbox
from botkit.messages import Attachment, ConversationRef, Message, Reply, Sender, SentMessage
from botkit.text import split_text

__all__ = ["InMemoryChannel", "SentReply"]


@dataclass
class SentReply:
    """One message the bot sent through an :class:`InMemoryChannel`.

    Attributes:
        conversation: where it went.
        text: what it says now (after any streaming edits).
        reply: the reply as the bot sent it (markup, quoted message, metadata).
        external_id: the id the channel gave it.
        edits: each text it was edited to, in order.
    """

    conversation: ConversationRef
    text: str
    reply: Reply
    external_id: str
    edits: list[str] = field(default_factory=list)


class InMemoryChannel(Adapter):
    """A channel that lives in the test: :meth:`receive` is a person writing, ``sent``
    is what the bot wrote.

    Args:
        name: the channel's name (the ``channel`` of its messages).
        capabilities: what it can do; by default it cannot edit (a streamed reply
            arrives as one message). Pass ``Capabilities(edits=True)`` to see edits.
        history: when given, :meth:`history` reads channel history from this list
            (messages you :meth:`post` without the bot seeing them); else the channel
            cannot read history, like most.
    """

    def __init__(
        self,
        name: str = "test",
        *,
        capabilities: Capabilities | None = None,
        history: list[Message] | None = None,
    ) -> None:
        super().__init__(name)
        if capabilities is not None:
            self.capabilities = capabilities  # type: ignore[misc]
        self.sent: list[SentReply] = []
        self.channel_log = history
        self._inbox: Inbox | None = None
        self._ids = itertools.count(1)

    async def start(self, inbox: Inbox) -> None:
        """Take messages from :meth:`receive`."""
        self._inbox = inbox

    async def stop(self) -> None:
        """Take no more messages."""
        self._inbox = None

    def message(
        self,
        text: str,
        *,
        user: str = "user",
        name: str | None = None,
        chat: str = "chat",
        thread: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        is_bot: bool = False,
        external_id: str | None = None,
        at: datetime | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> Message:
        """A message as this channel would deliver it (with files: ``attachments`` with
        their ``data``, a voice note say)."""
        return Message(
            conversation=ConversationRef(self.name, chat, thread),
            sender=Sender(user, name or user, is_bot),
            text=text,
            external_id=external_id or f"{self.name}-{next(self._ids)}",
            attachments=tuple(attachments),
            metadata=dict(metadata or {}),
            received_at=at or datetime.now(UTC),
        )

    async def receive(self, text: str, **kwargs: Any) -> int:
        """A person writes ``text`` (keywords as for :meth:`message`); its store id."""
        if self._inbox is None:
            raise RuntimeError(f"the {self.name} channel is not started")
        accepted = await self._inbox.accept(self.message(text, **kwargs))
        return accepted.message_id

    def post(self, text: str, **kwargs: Any) -> Message:
        """Put a message into the channel's history only (the bot does not see it)."""
        if self.channel_log is None:
            self.channel_log = []
        message = self.message(text, **kwargs)
        self.channel_log.append(message)
        return message

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Record the reply, split to ``max_length`` like a real channel."""
        pieces = split_text(reply.text, self.capabilities.max_length) or [reply.text]
        record: SentReply | None = None
        for piece in pieces:
            record = SentReply(conversation, piece, reply, f"{self.name}-out-{next(self._ids)}")
            self.sent.append(record)
        assert record is not None
        return SentMessage(conversation, record.external_id, pieces[-1])

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Change a sent message's text (streaming)."""
        for record in self.sent:
            if record.external_id == sent.external_id:
                record.edits.append(text)
                record.text = text
        return SentMessage(sent.conversation, sent.external_id, text)

    async def history(
        self, conversation: ConversationRef, *, since: datetime
    ) -> Sequence[Message]:
        """Messages :meth:`post`\\ ed to the conversation's chat since ``since``.

        Raises:
            NotImplementedError: the channel was made without ``history``.
        """
        if self.channel_log is None:
            raise NotImplementedError(f"the {self.name} channel keeps no history")
        return [
            m
            for m in self.channel_log
            if m.conversation.chat_id == conversation.chat_id and m.received_at >= since
        ]
