"""``InMemoryChannel``: a channel that lives in the test, and the replies it records."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from botkit.adapter import Adapter, Capabilities, CommandInfo
from botkit.exceptions import ServiceError
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
        delivery_id: the outbox's id for this delivery (the same on a retried send).
    """

    conversation: ConversationRef
    text: str
    reply: Reply
    external_id: str
    edits: list[str] = field(default_factory=list)
    delivery_id: str | None = None


class InMemoryChannel(Adapter):
    """A channel that lives in the test: :meth:`receive` is a person writing, ``sent``
    is what the bot wrote.

    It can fail on demand, as a real channel does: :meth:`fail_sends` and
    :meth:`fail_edits` script the errors the coming sends and edits raise (a
    ``RateLimitError`` with its ``retry_after``, a ``RequestRejectedError``...), so a
    test can pin down what the outbox and streaming do then::

        channel = InMemoryChannel().fail_sends(ServiceUnavailableError("test", "down"))
        async with run_bot(plugins=[echo], channels=[channel]) as bot:
            assert await bot.ask("hi") == "hi"  # the outbox retried
        assert channel.send_attempts == 2

    Args:
        name: the channel's name (the ``channel`` of its messages).
        capabilities: what it can do; by default it cannot edit (a streamed reply
            arrives as one message). Pass ``Capabilities(edits=True)`` to see edits.
        history: when given, :meth:`history` reads channel history from this list
            (messages you :meth:`post` without the bot seeing them); else the channel
            cannot read history, like most.

    Attributes:
        sent: what the bot sent, in order (a failed send leaves nothing here).
        send_attempts: how often the bot tried to send, failures included.
        edit_attempts: how often the bot tried to edit a sent message, failures included.
        change_times: the ``time.monotonic()`` of every send and edit attempt, to check
            the pace the bot keeps.
        typing_calls: how often the bot showed the typing indicator.
        commands: the command menu the bot published, if it did.
        delivered: set by every send that succeeds (clear it, then wait for the next).
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
        self.send_attempts = 0
        self.edit_attempts = 0
        self.change_times: list[float] = []
        self.typing_calls = 0
        self.commands: list[CommandInfo] = []
        self.delivered = asyncio.Event()
        self._send_failures: list[ServiceError] = []
        self._edit_failures: list[ServiceError] = []
        self._inbox: Inbox | None = None
        self._ids = itertools.count(1)
        # ids unique across channel objects, as a real channel's are: two bots on one database
        self._prefix = uuid.uuid4().hex[:6]

    def fail_sends(self, *errors: ServiceError) -> Self:
        """Make the coming sends raise ``errors``, one each, in order; later ones succeed.

        Adds to what was scripted before. A failed send sends nothing (a
        ``RateLimitError`` carries its ``retry_after`` to the outbox as a channel's
        429 would).
        """
        self._send_failures.extend(errors)
        return self

    def fail_edits(self, *errors: ServiceError) -> Self:
        """Make the coming edits raise ``errors``, one each, in order; later ones succeed.

        A failed edit leaves the message as it was (a ``RequestRejectedError`` is a
        message that can no longer be edited).
        """
        self._edit_failures.extend(errors)
        return self

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
            external_id=external_id or f"{self.name}-{self._prefix}-{next(self._ids)}",
            attachments=tuple(attachments),
            metadata=dict(metadata or {}),
            received_at=at or datetime.now(UTC),
        )

    async def receive(self, text: str, **kwargs: Any) -> int:
        """A person writes ``text`` (keywords as for :meth:`message`); its store id."""
        return await self.deliver(self.message(text, **kwargs))

    async def exchange(self, text: str, **kwargs: Any) -> list[str]:
        """A person writes ``text`` (keywords as for :meth:`message`) and waits until the
        bot is done with it; the texts the bot sent on this channel meanwhile, in any
        conversation (``TestBot.send`` keeps to the one written in).

        Raises:
            RuntimeError: the channel is not started.
        """
        before = len(self.sent)
        message_id = await self.receive(text, **kwargs)
        assert self._inbox is not None
        await self._inbox.wait_done(message_id)
        return [s.text for s in self.sent[before:]]

    async def deliver(self, message: Message, *, skip: str | None = None) -> int:
        """Hand the bot ``message`` as this channel would; its store id.

        A message delivered again (same ``external_id``) is stored once and gets the
        first one's id. ``skip`` is the reason it must not be answered, as an adapter
        gives it to ``Inbox.accept`` (``"bounce: empty Return-Path"``).

        Raises:
            RuntimeError: the channel is not started.
        """
        if self._inbox is None:
            raise RuntimeError(f"the {self.name} channel is not started")
        accepted = await self._inbox.accept(message, skip=skip)
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
        """Record the reply, split to ``max_length`` like a real channel.

        Raises:
            ServiceError: the next error scripted with :meth:`fail_sends`.
        """
        self.send_attempts += 1
        self.change_times.append(time.monotonic())
        if self._send_failures:
            raise self._send_failures.pop(0)
        pieces = split_text(reply.text, self.capabilities.max_length) or [reply.text]
        record: SentReply | None = None
        for piece in pieces:
            external_id = f"{self.name}-out-{self._prefix}-{next(self._ids)}"
            record = SentReply(conversation, piece, reply, external_id, delivery_id=delivery_id)
            self.sent.append(record)
        assert record is not None
        self.delivered.set()
        return SentMessage(conversation, record.external_id, pieces[-1])

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Change a sent message's text (streaming).

        Raises:
            ServiceError: the next error scripted with :meth:`fail_edits`.
        """
        self.edit_attempts += 1
        self.change_times.append(time.monotonic())
        if self._edit_failures:
            raise self._edit_failures.pop(0)
        for record in self.sent:
            if record.external_id == sent.external_id:
                record.edits.append(text)
                record.text = text
        return SentMessage(sent.conversation, sent.external_id, text)

    async def typing(self, conversation: ConversationRef) -> None:
        """Count the typing indicator (shown only with ``Capabilities(typing=True)``)."""
        self.typing_calls += 1

    async def publish_commands(self, commands: Sequence[CommandInfo]) -> None:
        """Keep the command menu the bot published."""
        self.commands = list(commands)

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
