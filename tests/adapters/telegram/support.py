"""Test helpers for the Telegram adapter: a recording inbox and corpus loading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botkit import Accepted, ChannelReport, Inbox, KeyValueState, Message, Secret, StoreError
from botkit.metrics import Metrics
from botkit.testing import MemoryState
from botkit_telegram import TelegramSettings
from botkit_telegram._limits import FloodLimiter
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI

CORPUS = Path(__file__).parent / "corpus"


def corpus(name: str) -> dict[str, Any]:
    """One update from the corpus, by file name without ``.json``."""
    data = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


class RecordingInbox(Inbox):
    """An inbox that keeps accepted messages in a list, dedupes like the store does
    (on channel and external id), and fails on demand like a locked database."""

    def __init__(self) -> None:
        self.accepted: list[Message] = []
        self.duplicates: list[Message] = []
        self.attempts = 0
        self.failures_left = 0
        #: When set, ``accept`` commits and then fails, like a process dying before it
        #: could acknowledge: the adapter must not ack, and the redelivery is a duplicate.
        self.crash_after_commit = False
        self.states: dict[str, MemoryState] = {}
        self.metrics = Metrics()  # what the adapter reports (ignored updates, waits)
        self._ids: dict[tuple[str, str], int] = {}
        self._changed = asyncio.Condition()

    async def accept(self, message: Message, *, skip: str | None = None) -> Accepted:
        self.attempts += 1
        if self.failures_left > 0:
            self.failures_left -= 1
            raise StoreError("database is locked")
        key = (message.channel, message.external_id)
        async with self._changed:
            if key in self._ids:
                self.duplicates.append(message)
                self._changed.notify_all()
                return Accepted(self._ids[key], duplicate=True)
            self.accepted.append(message)
            self._ids[key] = len(self.accepted)
            self._changed.notify_all()
        if self.crash_after_commit:
            self.crash_after_commit = False
            raise StoreError("connection lost after commit")
        return Accepted(len(self.accepted), duplicate=False)

    def report(self, channel: str) -> ChannelReport:
        return self.metrics.channel(channel)

    def state(self, namespace: str) -> KeyValueState:
        return self.states.setdefault(namespace, MemoryState())

    async def wait_for(
        self, condition: Callable[[RecordingInbox], bool], within: float = 5.0
    ) -> None:
        """Wait until ``condition(self)`` holds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: condition(self))


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``condition()`` holds, failing the test after ``within`` seconds."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition still false after {within} s")


def make_settings(api: FakeTelegramAPI, **overrides: Any) -> TelegramSettings:
    """Settings pointing at the fake, with short timeouts and backoffs."""
    values: dict[str, Any] = {
        "token": Secret(TOKEN, source="TELEGRAM_BOT_TOKEN"),
        "api_url": api.api_url,
        "poll_timeout": 1,
        "request_timeout": 5.0,
        "backoff_initial": 0.1,
        "backoff_max": 1.0,
    }
    values.update(overrides)
    return TelegramSettings(**values)


def fast_limiter(**overrides: Any) -> FloodLimiter:
    """A limiter with Telegram's shape but test-sized intervals."""
    values: dict[str, Any] = {
        "max_wait": 30.0,
        "per_chat_interval": 0.0,
        "group_per_minute": 1000,
        "global_per_second": 1000,
    }
    values.update(overrides)
    return FloodLimiter(**values)
