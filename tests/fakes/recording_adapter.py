"""A real in-process channel for core tests: records what the bot sends, fails on demand."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from botkit import (
    Adapter,
    Capabilities,
    CommandInfo,
    ConversationRef,
    Inbox,
    Message,
    Reply,
    Sender,
    SentMessage,
    ServiceError,
    split_text,
)


@dataclass
class Sent:
    """One send or edit the bot made."""

    conversation: ConversationRef
    text: str
    external_id: str
    delivery_id: str | None = None
    edits: list[str] = field(default_factory=list)


class RecordingAdapter(Adapter):
    """Delivers into lists; ``fail_next`` scripts errors for the coming sends."""

    capabilities: ClassVar[Capabilities] = Capabilities(max_length=4000)

    def __init__(self, name: str = "test", *, capabilities: Capabilities | None = None) -> None:
        super().__init__(name)
        if capabilities is not None:
            self.capabilities = capabilities  # type: ignore[misc]
        self.inbox: Inbox | None = None
        self.sent: list[Sent] = []
        self.send_attempts = 0
        self.edit_attempts = 0
        self.fail_next: list[ServiceError] = []
        self.fail_edits: list[ServiceError] = []
        self.commands: list[CommandInfo] = []
        self.typing_calls = 0
        self.change_times: list[float] = []  # monotonic time of every send and edit
        self.delivered = asyncio.Event()
        self._ids = itertools.count(1)
        # ids unique across adapters, as a channel's are: two bots on one database
        self._prefix = uuid.uuid4().hex[:6]

    async def start(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def stop(self) -> None:
        self.inbox = None

    async def say(
        self,
        text: str,
        *,
        chat: str = "c1",
        user: str = "u1",
        name: str | None = None,
        external_id: str | None = None,
        thread: str | None = None,
    ) -> int:
        """Deliver a user's message to the bot as the channel would; returns its store id."""
        assert self.inbox is not None, "adapter not started"
        accepted = await self.inbox.accept(
            Message(
                conversation=ConversationRef(self.name, chat, thread),
                sender=Sender(user, name or user),
                text=text,
                external_id=external_id or f"{chat}:{next(self._ids)}:{text[:20]}",
            )
        )
        return accepted.message_id

    async def ask(self, text: str, **kwargs: str) -> list[str]:
        """Say something and wait until the bot is done with it; returns the new replies."""
        before = len(self.sent)
        message_id = await self.say(text, **kwargs)
        assert self.inbox is not None
        await self.inbox.wait_done(message_id)
        return [s.text for s in self.sent[before:]]

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        self.send_attempts += 1
        self.change_times.append(time.monotonic())
        if self.fail_next:
            raise self.fail_next.pop(0)
        # like a real channel, split what is longer than one message
        pieces = split_text(reply.text, self.capabilities.max_length) or [reply.text]
        for piece in pieces:
            sent = Sent(conversation, piece, f"out-{self._prefix}-{next(self._ids)}", delivery_id)
            self.sent.append(sent)
        self.delivered.set()
        return SentMessage(conversation, sent.external_id, pieces[-1])

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        self.edit_attempts += 1
        self.change_times.append(time.monotonic())
        if self.fail_edits:
            raise self.fail_edits.pop(0)
        for record in self.sent:
            if record.external_id == sent.external_id:
                record.edits.append(text)
                record.text = text
        return SentMessage(sent.conversation, sent.external_id, text)

    async def typing(self, conversation: ConversationRef) -> None:
        self.typing_calls += 1

    async def publish_commands(self, commands: Sequence[CommandInfo]) -> None:
        self.commands = list(commands)
