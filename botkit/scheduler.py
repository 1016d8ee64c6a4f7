"""Runs plugins' scheduled jobs in one process cluster-wide: ``on_schedule`` jobs here,
and the jobs plugins schedule for a time (``ctx.schedule``) through ``botkit.job_runner``.

The scheduler runs under the singleton lease ``scheduler`` (``botkit.leases``): with
several processes on one database, one of them fires the jobs and another takes over
when it stops or dies. Each due time fires once cluster-wide: before firing, the
process records (job, due time) in ``job_runs``, insert-if-absent, fenced by its tenure
of the lease; only the process whose insert went in fires. So a due time fires at most
once: a process that dies while a job runs does not run it again.

A job's due times form one chain across processes and restarts: each is the schedule's
next time after the last one fired (as ``job_runs`` records it), so the process that
takes over continues where the last one stopped. Due times missed by up to
``GRACE_LEASES`` leases (the hand-over between processes, a restart, a job that ran
long) are fired once, late, together; older ones are skipped. A job never fired before
starts from now.

Both are timed by the bot's clock (``botkit.clock``): a test's clock fires them when it
is moved on (``botkit.testing``), and :meth:`Scheduler.caught_up` says when they have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from botkit.clock import Clock, SystemClock
from botkit.context import PluginRuntime
from botkit.job_runner import LOOP, JobRunner, Waits
from botkit.leases import Singleton, Singletons
from botkit.plugin import JobHandler, ScheduledJob
from botkit.runtime import Runtime
from botkit.schedule import IntervalSchedule

if TYPE_CHECKING:
    from botkit.store.leases import LeaseStore

__all__ = ["GRACE_LEASES", "JOB_POLL", "LEASE_NAME", "Scheduler"]

log = logging.getLogger(__name__)

#: The singleton lease the scheduler runs under.
LEASE_NAME = "scheduler"
#: Due times missed by at most this many leases still fire (once, late).
GRACE_LEASES = 2
#: Seconds between looks for jobs scheduled by other processes.
JOB_POLL = 2.0


class Scheduler:
    """One task per job, in the process holding the scheduler's lease; a job that
    raises is logged and runs again at its next time. With job handlers, one more task
    fires the jobs plugins scheduled (``botkit.job_runner``).

    Args:
        runtime: the bot's services (the jobs' context); ``runtime.jobs`` is told to
            wake the runner when a job is scheduled in this process.
        jobs: every plugin's ``on_schedule`` jobs.
        singletons: the bot's singleton leases.
        handlers: every plugin's job handlers (``@plugin.job``).
        clock: the clock due times are judged by.
        poll: the longest wait before looking for jobs other processes scheduled.
    """

    def __init__(
        self,
        runtime: Runtime,
        jobs: Sequence[ScheduledJob],
        singletons: Singletons,
        *,
        handlers: Sequence[JobHandler] = (),
        clock: Clock | None = None,
        poll: float = JOB_POLL,
    ) -> None:
        self._runtime = runtime
        self._jobs = list(jobs)
        self._singletons = singletons
        self._clock = clock if clock is not None else SystemClock()
        self._singleton: Singleton | None = None
        self._task: asyncio.Task[None] | None = None
        self._waits = Waits()
        self._waits.expected = {f"{job.plugin}.{job.name}" for job in self._jobs}
        self._runner: JobRunner | None = None
        if handlers:
            self._waits.expected.add(LOOP)
            self._runner = JobRunner(
                runtime,
                {(h.plugin, h.name): h for h in handlers},
                clock=self._clock,
                holder=singletons.holder,
                lease=singletons.lease,
                fence=self._fence,
                waits=self._waits,
                poll=poll,
            )
            if runtime.jobs is not None:
                runtime.jobs.on_scheduled = self._runner.wake

    @property
    def singleton(self) -> Singleton | None:
        """The scheduler's lease holder, once started with jobs to run."""
        return self._singleton

    def start(self) -> None:
        """Start contending for the scheduler's lease; run the jobs while holding it."""
        if (not self._jobs and self._runner is None) or self._task is not None:
            return
        self._singleton = self._singletons.singleton(LEASE_NAME, self._run_jobs)
        self._task = asyncio.create_task(self._singleton.run(), name="botkit-scheduler")

    async def stop(self) -> None:
        """Cancel every job, wait for them to end, and release the lease."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def caught_up(self, moment: datetime) -> None:
        """Return once every job due by ``moment`` (on the scheduler's clock) has fired
        and finished, and nothing else falls due until after it: for a test that moved
        its clock on. Waits for this process to hold the scheduler's lease."""
        await self._waits.past(moment)

    def _fence(self) -> tuple[str, int] | None:
        """The scheduler lease's (name, token) this process holds now, if any."""
        singleton = self._singleton
        token = singleton.token if singleton is not None else None
        return (LEASE_NAME, token) if token is not None else None

    async def _run_jobs(self) -> None:
        tasks = [
            asyncio.create_task(self._loop(job), name=f"job-{job.name}") for job in self._jobs
        ]
        if self._runner is not None:
            tasks.append(asyncio.create_task(self._runner.run(), name="botkit-job-runner"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._waits.stopped()

    async def _loop(self, job: ScheduledJob) -> None:
        key = f"{job.plugin}.{job.name}"
        context = PluginRuntime(self._runtime, job.plugin)
        leases = self._singletons.leases
        grace = timedelta(seconds=self._singletons.lease * GRACE_LEASES)
        last = await _last_run(leases, key, self._singletons.lease / 3)
        while True:
            due = _next_due(job, last, self._clock.now(), grace)
            if due > self._clock.now():
                self._waits.waiting(key, due)
                await self._clock.sleep_until(due)
            self._waits.working(key)
            fence = self._fence()
            try:
                fired = await leases.record_run(key, due, self._singletons.holder, fence=fence)
            except Exception as exc:  # StoreError, or the driver's own
                log.warning("scheduled job %s: could not record its run at %s: %s", key, due, exc)
                fired = False  # it may have been recorded: never risk firing twice
            last = due
            if not fired:
                continue
            try:
                await job.func(context)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled job %s.%s failed", job.plugin, job.name)


def _next_due(
    job: ScheduledJob, last: datetime | None, now: datetime, grace: timedelta
) -> datetime:
    """The next due time of ``job`` after ``last`` (on its chain): the latest one already
    past if several within ``grace`` were missed, else the next one to come."""
    schedule = job.schedule
    if last is None:
        return schedule.next_after(now)
    floor = now - grace
    start = last
    if last < floor:  # skip the due times missed by more than the grace, in one step
        if isinstance(schedule, IntervalSchedule):
            step = timedelta(seconds=schedule.seconds)
            start = last + (floor - last) // step * step  # still on the chain
        else:
            start = floor  # a cron schedule's times do not depend on the last one
    due = schedule.next_after(start)
    while due <= now:
        following = schedule.next_after(due)
        if following > now:
            break
        due = following
    return due


async def _last_run(leases: LeaseStore, key: str, pause: float) -> datetime | None:
    """The job's last fired due time, read again until the database answers."""
    while True:
        try:
            return await leases.last_run(key)
        except Exception as exc:  # StoreError, or the driver's own
            log.warning("scheduled job %s: could not read its last run (%s); retrying", key, exc)
            await asyncio.sleep(pause)
