"""A minimal in-memory ``Inbox`` for adapter tests: dedupes, records, fails or waits on demand."""

from __future__ import annotations

import asyncio

from botkit import Accepted, ChannelReport, Inbox, Message, StoreError
from botkit.metrics import Metrics
from botkit.testing import MemoryState

__all__ = ["RecordingInbox"]


class RecordingInbox(Inbox):
    """Accepts each (channel, external id) once, like the real inbox.

    Attributes:
        messages: every message accepted as new, in order.
        duplicates: every message refused as a duplicate.
        failure: when set, ``accept`` raises it (a database that is down).
        gate: when set, ``accept`` waits for it before answering (a slow commit).
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.duplicates: list[Message] = []
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.states: dict[str, MemoryState] = {}
        self.metrics = Metrics()  # what the adapter reports (ignored events, waits)

    async def accept(self, message: Message, *, skip: str | None = None) -> Accepted:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        for index, seen in enumerate(self.messages, start=1):
            if (seen.channel, seen.external_id) == (message.channel, message.external_id):
                self.duplicates.append(message)
                return Accepted(index, duplicate=True)
        self.messages.append(message)
        return Accepted(len(self.messages), duplicate=False)

    def report(self, channel: str) -> ChannelReport:
        return self.metrics.channel(channel)

    def state(self, namespace: str) -> MemoryState:
        return self.states.setdefault(namespace, MemoryState())

    def fail_with_store_error(self) -> None:
        """Make ``accept`` fail as a broken database would."""
        self.failure = StoreError("database is locked")
