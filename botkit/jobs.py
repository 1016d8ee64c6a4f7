"""Jobs plugins schedule for a time: ``ctx.schedule``, ``ctx.cancel_job``, ``ctx.pending_jobs``.

A plugin registers what runs a job with ``@plugin.job("name")`` and schedules it from any
handler, hook or job::

    job_id = await ctx.schedule(
        job="reminder", at=timedelta(hours=1), data={"text": "call Bob"},
        conversation=message.conversation,
    )

Jobs are stored in the database (``scheduled_jobs``) and fired once cluster-wide, at
their due time, by the scheduler (``botkit.scheduler``, ``botkit.job_runner``); one due
while no process ran fires when one starts. ``every=`` or ``cron=`` makes a job recur.
This module checks what is asked and stores it; the firing is the runner's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botkit.clock import Clock
from botkit.messages import ConversationRef
from botkit.schedule import CronSchedule, IntervalSchedule, Schedule
from botkit.store import JobRecord, NewJob, Store

__all__ = ["JobInfo", "Jobs", "Recurrence"]

#: The most a job's data may weigh, as JSON.
MAX_DATA_BYTES = 64_000


@dataclass(frozen=True, slots=True)
class Recurrence:
    """When a recurring job is due again: every ``every`` seconds, or on ``cron`` read
    in ``timezone`` (UTC when ``None``)."""

    every: float | None = None
    cron: str | None = None
    timezone: str | None = None

    @classmethod
    def of(
        cls, every: float | timedelta | None, cron: str | None, timezone: str | None
    ) -> Recurrence | None:
        """The recurrence asked for, checked; ``None`` for a one-off job.

        Raises:
            ValueError: both or a bad one, a time zone without cron, an unknown zone.
        """
        if every is None and cron is None:
            if timezone is not None:
                raise ValueError("timezone= applies to cron= only")
            return None
        if every is not None and cron is not None:
            raise ValueError("give every= or cron=, not both")
        if every is not None:
            if timezone is not None:
                raise ValueError("timezone= applies to cron= only")
            seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
            if not seconds > 0:
                raise ValueError(f"every= must be a positive time, not {every!r}")
            return cls(every=seconds)
        recurrence = cls(cron=cron, timezone=timezone)
        recurrence.schedule()  # checks the expression and the zone
        return recurrence

    def schedule(self) -> Schedule:
        """The schedule its due times follow.

        Raises:
            ValueError: a malformed cron expression or an unknown time zone.
        """
        if self.every is not None:
            return IntervalSchedule(self.every)
        try:
            zone = ZoneInfo(self.timezone) if self.timezone is not None else None
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{self.timezone!r} is not a known time zone") from None
        return CronSchedule.parse(self.cron or "", zone)

    def next_after(self, due: datetime, now: datetime) -> datetime:
        """The next due time after the one just fired (``due``), later than ``now``:
        due times missed meanwhile (the bot was down) were covered by that one run. An
        interval stays on its chain (``due`` plus whole steps)."""
        if self.every is not None:
            step = timedelta(seconds=self.every)
            steps = max((now - due) // step + 1, 1)
            return due + steps * step
        schedule = self.schedule()
        return schedule.next_after(max(due, now))


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job that will still fire, as ``ctx.pending_jobs()`` lists it.

    Attributes:
        id: what ``ctx.cancel_job`` takes.
        job: the name of the job the plugin registered.
        due_at: when it fires next (UTC).
        data: what it was scheduled with.
        conversation: the conversation it was scheduled for, if any.
        recurrence: when it recurs; ``None`` for a one-off job.
        running: it is firing right now.
        runs: how often it has fired.
    """

    id: int
    job: str
    due_at: datetime
    data: Any
    conversation: ConversationRef | None
    recurrence: Recurrence | None
    running: bool
    runs: int

    @classmethod
    def of(cls, record: JobRecord) -> JobInfo:
        """The info of a stored job."""
        return cls(
            record.id,
            record.job,
            record.due_at,
            record.data,
            record.conversation,
            recurrence_of(record),
            record.status == "running",
            record.runs,
        )


def recurrence_of(record: JobRecord) -> Recurrence | None:
    """A stored job's recurrence; ``None`` for a one-off job."""
    if record.every_seconds is None and record.cron is None:
        return None
    return Recurrence(record.every_seconds, record.cron, record.timezone)


class Jobs:
    """Scheduling, cancelling and listing plugins' jobs (``Runtime.jobs``).

    Args:
        store: the store the jobs live in.
        clock: the clock due times are reckoned by (``at=timedelta`` counts from it).
        handlers: the (plugin, job name) pairs some loaded plugin registered.
    """

    def __init__(self, store: Store, clock: Clock, handlers: Collection[tuple[str, str]]) -> None:
        self._store = store
        self.clock = clock
        self._handlers = frozenset(handlers)
        # the runner, told of each job scheduled here so it need not wait for its poll
        self.on_scheduled: Callable[[], None] | None = None

    async def schedule(
        self,
        plugin: str,
        job: str,
        *,
        at: datetime | timedelta | None = None,
        data: Any = None,
        conversation: ConversationRef | None = None,
        every: float | timedelta | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        key: str | None = None,
    ) -> int:
        """Store a job of ``plugin``; its id. See :meth:`botkit.PluginRuntime.schedule`.

        Raises:
            ValueError: an unregistered job, a naive datetime, data that is not JSON,
                a bad recurrence, or neither ``at`` nor a recurrence.
        """
        if (plugin, job) not in self._handlers:
            raise ValueError(
                f"plugin {plugin!r} has no job named {job!r} "
                f"(register one with @plugin.job({job!r}))"
            )
        recurrence = Recurrence.of(every, cron, timezone)
        now = self.clock.now()
        if at is None:
            if recurrence is None:
                raise ValueError("schedule needs at= (a time or a delay), every= or cron=")
            due = recurrence.schedule().next_after(now)
        elif isinstance(at, timedelta):
            due = now + at
        elif at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"at= must be an aware datetime (with a time zone), not {at!r}")
        else:
            due = at
        try:
            encoded = json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a job's data must be JSON: {exc}") from None
        if len(encoded.encode()) > MAX_DATA_BYTES:
            raise ValueError(f"a job's data must be at most {MAX_DATA_BYTES} bytes as JSON")
        if key is not None and not 1 <= len(key) <= 255:
            raise ValueError("a job's key must be 1-255 characters")
        conversation_id = (
            await self._store.history.conversation_id(conversation)
            if conversation is not None
            else None
        )
        job_id = await self._store.jobs.add(
            NewJob(
                plugin=plugin,
                job=job,
                due_at=due,
                data=json.loads(encoded),
                conversation_id=conversation_id,
                every_seconds=recurrence.every if recurrence else None,
                cron=recurrence.cron if recurrence else None,
                timezone=recurrence.timezone if recurrence else None,
                key=key,
            )
        )
        if self.on_scheduled is not None:
            self.on_scheduled()
        return job_id

    async def cancel(self, plugin: str, job_id: int) -> bool:
        """Cancel one of ``plugin``'s jobs; whether there was one to cancel."""
        return await self._store.jobs.cancel(plugin, job_id)

    async def pending(
        self,
        plugin: str,
        *,
        job: str | None = None,
        conversation: ConversationRef | None = None,
    ) -> list[JobInfo]:
        """``plugin``'s jobs that will still fire, soonest first."""
        conversation_id = (
            await self._store.history.conversation_id(conversation)
            if conversation is not None
            else None
        )
        records = await self._store.jobs.pending(plugin, job=job, conversation_id=conversation_id)
        return [JobInfo.of(r) for r in records]
