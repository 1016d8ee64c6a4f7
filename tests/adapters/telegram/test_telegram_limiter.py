"""The flood limiter on a virtual clock: exact release times, whatever the machine's load."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

import pytest

from botkit_telegram import _limits
from botkit_telegram._limits import FloodLimiter

PRIVATE = "12345678"
GROUP = "-1001417735217"


class VirtualTime:
    """A clock and a ``sleep`` for the limiter: time moves only when every waiter sleeps,
    straight to the earliest wake-up, so a release time is exactly the slot it was given."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, next(self._order), woken))
        await woken

    async def run(self, *calls: Awaitable[Any]) -> list[Any]:
        """Run ``calls`` together, advancing time whenever all of them sleep."""
        tasks = [asyncio.ensure_future(c) for c in calls]
        while not all(t.done() for t in tasks):
            for _ in range(20):  # let every runnable task reach its next sleep or its end
                await asyncio.sleep(0)
            if self._sleepers:
                when, _, woken = heapq.heappop(self._sleepers)
                self.now = max(self.now, when)
                woken.set_result(None)
        return [t.result() for t in tasks]


@pytest.fixture
def virtual(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    time = VirtualTime()
    # the limiter sleeps through ``asyncio.sleep``: give it the virtual one, it alone
    monkeypatch.setattr(_limits, "asyncio", SimpleNamespace(sleep=time.sleep))
    return time


def limiter(virtual: VirtualTime, **settings: Any) -> FloodLimiter:
    values: dict[str, Any] = {"max_wait": 3600.0, "global_per_second": 1000}
    values.update(settings)
    return FloodLimiter(clock=virtual.clock, **values)


async def released(virtual: VirtualTime, flood: FloodLimiter, chats: list[str]) -> list[float]:
    """When each ``wait`` for ``chats`` (all asked at once) returned, on the virtual clock."""

    async def one(chat: str) -> float:
        await flood.wait(chat)
        return virtual.now

    return await virtual.run(*(one(c) for c in chats))


async def test_messages_to_one_chat_are_released_an_interval_apart(virtual: VirtualTime) -> None:
    flood = limiter(virtual, per_chat_interval=0.2)
    times = await released(virtual, flood, [PRIVATE] * 4)
    assert times == pytest.approx([0.0, 0.2, 0.4, 0.6], abs=0.005)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.2 - 1e-9


async def test_another_chat_is_not_held_behind_a_busy_one(virtual: VirtualTime) -> None:
    flood = limiter(virtual, per_chat_interval=0.2)
    times = await released(virtual, flood, [PRIVATE, PRIVATE, PRIVATE, GROUP])
    assert times[:3] == pytest.approx([0.0, 0.2, 0.4], abs=0.005)
    assert times[3] == pytest.approx(0.0, abs=0.005)  # at once, not after the private ones


async def test_a_group_gets_twenty_messages_a_minute(virtual: VirtualTime) -> None:
    flood = limiter(virtual)  # Telegram's own figures: 1 s per chat, 20 a minute in groups
    times = await released(virtual, flood, [GROUP] * 21)
    assert times[:20] == pytest.approx([float(i) for i in range(20)], abs=0.05)
    assert times[20] == pytest.approx(60.0, abs=0.05)  # the 21st waits for the first to age


async def test_a_pause_holds_the_chat_until_it_ends(virtual: VirtualTime) -> None:
    flood = limiter(virtual, per_chat_interval=0.0)
    flood.pause(PRIVATE, 5.0)
    times = await released(virtual, flood, [PRIVATE, GROUP])
    assert times == pytest.approx([5.0, 0.0], abs=0.005)


async def test_each_wait_is_reported_as_pacing_or_as_the_servers_flood_control(
    virtual: VirtualTime,
) -> None:
    waits: list[tuple[float, str]] = []
    flood = limiter(virtual, per_chat_interval=0.5)
    flood.on_wait = lambda seconds, reason: waits.append((seconds, reason))
    await released(virtual, flood, [PRIVATE, PRIVATE])  # the second waits its turn
    flood.pause(PRIVATE, 7.0)  # Telegram answered 429 with retry_after 7
    await released(virtual, flood, [PRIVATE])
    assert [reason for _, reason in waits] == ["pacing", "server"]
    assert [seconds for seconds, _ in waits] == pytest.approx([0.5, 7.0])
