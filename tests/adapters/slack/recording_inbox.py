"""A minimal in-memory ``Inbox`` for adapter tests: dedupes, records, fails or waits on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from botkit import Accepted, ChannelReport, Inbox, Message, StoreError
from botkit.metrics import Metrics

__all__ = ["MemoryState", "RecordingInbox"]


class MemoryState:
    """``KeyValueState`` in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.ttls: dict[str, float | timedelta | None] = {}  # the time to live each was set with

    async def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def set(self, key: str, value: Any, *, ttl: float | timedelta | None = None) -> None:
        self.values[key] = value
        self.ttls[key] = ttl

    async def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: float | timedelta | None = None,
    ) -> Any:
        value = change(self.values.get(key, default))
        self.values[key] = value
        if ttl is not None or key not in self.ttls:
            self.ttls[key] = ttl
        return value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)
        self.ttls.pop(key, None)


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
