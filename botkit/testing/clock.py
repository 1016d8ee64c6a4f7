"""``FakeClock``: the scheduler's clock in tests, moved on only when the test says so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that moves only when told to, for the scheduler (``botkit.clock.Clock``).

    Args:
        start: the time it shows first (aware); default: now.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.utcoffset() is None:
            raise ValueError("a FakeClock starts at an aware datetime")
        self._now = (start or datetime.now(UTC)).astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """The time it shows (UTC)."""
        return self._now

    async def sleep_until(self, moment: datetime) -> None:
        """Return once the clock has been moved on to ``moment`` (at once if it shows
        that already)."""
        if moment <= self._now:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (moment, waiter)
        self._sleepers.append(entry)
        try:
            await waiter
        finally:
            self._sleepers.remove(entry)

    def advance(self, by: timedelta | float) -> datetime:
        """Move the clock ``by`` on (a timedelta or seconds); wake whoever slept until
        then. Returns the new time."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError("a clock does not go back")
        self._now += step
        for deadline, waiter in self._sleepers:
            if deadline <= self._now and not waiter.done():
                waiter.set_result(None)
        return self._now
