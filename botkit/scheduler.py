"""Runs plugins' scheduled jobs (``on_schedule``) until the bot stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from botkit.context import PluginRuntime
from botkit.plugin import ScheduledJob
from botkit.runtime import Runtime
from botkit.store.models import utcnow

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    """One task per job; a job that raises is logged and runs again at its next time."""

    def __init__(
        self,
        runtime: Runtime,
        jobs: Sequence[ScheduledJob],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._runtime = runtime
        self._jobs = list(jobs)
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every job's loop."""
        for job in self._jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job-{job.name}"))

    async def stop(self) -> None:
        """Cancel every job and wait for them to end."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, job: ScheduledJob) -> None:
        context = PluginRuntime(self._runtime, job.plugin)
        while True:
            now = self._clock()
            await asyncio.sleep(max((job.schedule.next_after(now) - now).total_seconds(), 0))
            try:
                await job.func(context)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled job %s.%s failed", job.plugin, job.name)
