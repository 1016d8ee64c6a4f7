"""The clock scheduled work is timed by: the system's, or a test's that moves on demand.

Only the scheduler and the jobs plugins schedule read it (due times, "in 10 minutes",
"tomorrow at 9"). Claims and leases are judged by the database's clock, never by this
one, so a test's clock cannot make another process's work lapse.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Protocol

from botkit.store.models import utcnow

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Tells the time (aware, UTC) and waits for a time to come. Waits name the time
    they end at, not a length: a test's clock moved on before the waiting task got to
    run still wakes it."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Return once this clock shows ``moment`` or later (at once if it does now)."""
        ...


class SystemClock:
    """The system's wall clock, and ``asyncio.sleep``."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        return utcnow()

    async def sleep_until(self, moment: datetime) -> None:
        """``asyncio.sleep`` until ``moment``."""
        await asyncio.sleep(max((moment - utcnow()).total_seconds(), 0.0))
