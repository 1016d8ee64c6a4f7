"""Per (method, channel) pacing: Slack's per-channel posting rate and its 429 Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Pacer", "TooLong", "WaitReport"]

Key = tuple[str, str]


class WaitReport(Protocol):
    """Told of each wait: its seconds, and why (``"server"``: a 429; ``"pacing"``)."""

    def __call__(self, seconds: float, *, reason: str) -> None: ...


class TooLong(Exception):
    """The next call under this key may only go out after longer than the caller will wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"blocked for {wait:.1f} s")
        self.wait = wait


class Pacer:
    """Spaces calls that share a key and holds a key back after a 429.

    Calls under one key go out one at a time, in the order they asked (``asyncio.Lock``
    is fair), so the pieces of a long reply reach a channel in order.

    Args:
        clock: a monotonic clock, in seconds.
        sleep: how to wait; tests may pass a fake.
        on_wait: told of each wait (the metrics count them).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_wait: WaitReport | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._on_wait = on_wait
        self._not_before: dict[Key, float] = {}
        self._held_until: dict[Key, float] = {}  # a 429's Retry-After, apart from pacing
        self._locks: dict[Key, asyncio.Lock] = {}

    def lock(self, key: Key) -> asyncio.Lock:
        """The lock that serialises calls under ``key``."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def blocked_for(self, key: Key) -> float:
        """Seconds until a call under ``key`` may go out (0 when it may now)."""
        return max(0.0, self._not_before.get(key, 0.0) - self._clock())

    async def wait_turn(self, key: Key, *, interval: float, max_wait: float) -> None:
        """Wait until a call under ``key`` may go out, then reserve the next ``interval``.

        Call it while holding :meth:`lock`.

        Raises:
            TooLong: the wait would be longer than ``max_wait``.
        """
        wait = self.blocked_for(key)
        if wait > max_wait:
            raise TooLong(wait)
        if wait > 0:
            if self._on_wait is not None:
                held = self._held_until.get(key, 0.0) >= self._not_before[key]
                self._on_wait(wait, reason="server" if held else "pacing")
            await self._sleep(wait)
        self._not_before[key] = max(self._not_before.get(key, 0.0), self._clock() + interval)

    def hold(self, key: Key, seconds: float) -> None:
        """Let nothing under ``key`` go out for ``seconds`` (a 429's Retry-After)."""
        until = self._clock() + seconds
        self._held_until[key] = until
        self._not_before[key] = max(self._not_before.get(key, 0.0), until)
