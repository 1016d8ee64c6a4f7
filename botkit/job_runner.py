"""Fires plugins' scheduled jobs (``ctx.schedule``) at their due times, once cluster-wide.

The runner works inside the scheduler's singleton lease (``botkit.scheduler``): one
process at a time claims the jobs that are due (``JobStore.claim_due``, fenced by its
tenure of that lease), runs each under a claim it renews, and finishes it fenced by
that claim. What a job guarantees:

- **its messages go out exactly once.** What a run sends (``run.reply``, ``run.send``)
  is kept until the handler returns, then stored in the outbox in the transaction that
  marks the run done, and delivered by the outbox (stored once, sent once, resumed
  after a crash). A run that raises or dies sends nothing.
- **its other effects happen at least once.** A process killed mid-run leaves the job
  claimed; once the claim lapses (``bot.singleton_lease``), the process holding the
  scheduler claims it again and runs it again. A handler that writes elsewhere (state,
  an API) should be idempotent: ``run.id`` with ``run.due_at`` names the run, and
  ``run.attempt`` says how often it was tried.
- **a due time fires once.** A run that finished is never run again; a job cancelled
  while it runs finishes that run and does not recur. A clean stop gives back the runs
  still in their handler (they run again, in this process after a restart or in
  another); a run whose handler had returned is complete, and is recorded and its
  messages sent before the stop ends. A handler that raises is tried
  again with backoff, up to its ``attempts`` (a run cut short by a dead process counts
  as one), then the job is marked failed (a recurring job moves on to its next time).
- **late, not lost.** A job due while no process ran fires when one starts, once; a
  recurring one then continues from its next time after now.

Each process's runner also hears of jobs scheduled in it at once; jobs scheduled in
other processes are found by a poll every ``poll`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from botkit.clock import Clock
from botkit.context import PluginRuntime
from botkit.exceptions import ClaimLostError
from botkit.jobs import recurrence_of
from botkit.messages import ConversationRef, Reply
from botkit.plugin import JobHandler
from botkit.runtime import Runtime
from botkit.store import JobRecord, OutboundDraft
from botkit.turn import draft_of, reply_of

__all__ = ["JobRun", "JobRunner", "Waits"]

log = logging.getLogger(__name__)

#: Jobs one process runs at once.
MAX_RUNNING = 8
#: Seconds before a failed run is tried again, doubled each time, up to RETRY_MAX.
RETRY_BASE = 30.0
RETRY_MAX = 3600.0
#: Ended jobs are deleted this long after they ended.
KEEP_ENDED = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)
LOOP = "jobs"  # the runner's name among the scheduler's loops

FenceSource = Callable[[], "tuple[str, int] | None"]


class JobRun(PluginRuntime):
    """One run of a scheduled job, as its handler gets it.

    Messages it sends (:meth:`reply`, :meth:`send`, :meth:`notify`) are stored when the
    handler returns, with the run's completion, and then delivered: a run that raises
    or is cut short sends nothing, and a run is never delivered twice.

    Attributes:
        id: the job's id (what ``schedule`` returned).
        job: the name it was scheduled under.
        data: what it was scheduled with.
        conversation: the conversation it was scheduled for, if any.
        due_at: the due time being fired (UTC).
        attempt: 1 on the first try of this due time, then 2, 3...
        recurring: whether it is due again after this run.
    """

    def __init__(self, runtime: Runtime, record: JobRecord) -> None:
        super().__init__(runtime, record.plugin)
        self.id = record.id
        self.job = record.job
        self.data: Any = record.data
        self.conversation = record.conversation
        self.due_at = record.due_at
        self.attempt = record.attempts
        self.recurring = recurrence_of(record) is not None
        self.outgoing: list[tuple[ConversationRef, Reply]] = []

    async def send(self, conversation: ConversationRef, reply: Reply | str) -> None:
        """Send a message to any conversation once this run finishes (through the outbox)."""
        self.outgoing.append((conversation, reply_of(reply, None)))

    async def reply(self, reply: Reply | str) -> None:
        """Send a message to the job's conversation once this run finishes.

        Raises:
            ValueError: the job was scheduled without a conversation.
        """
        if self.conversation is None:
            raise ValueError(f"job {self.job!r} has no conversation: use send(conversation, ...)")
        await self.send(self.conversation, reply)


class Waits:
    """Where each loop of the scheduler waits, on its clock: a test that moved the clock
    on (``TestBot.advance``) waits until every loop has fired what fell due."""

    def __init__(self) -> None:
        self._until: dict[str, datetime | None] = {}
        self._changed = asyncio.Event()
        self.expected: set[str] = set()

    def working(self, name: str) -> None:
        """The loop ``name`` is firing something."""
        self._until[name] = None

    def waiting(self, name: str, until: datetime) -> None:
        """The loop ``name`` has nothing to do until ``until``."""
        self._until[name] = until
        self._changed.set()

    def stopped(self) -> None:
        """The loops ended (the lease was lost, or the bot stopped)."""
        self._until.clear()
        self._changed.set()

    async def past(self, moment: datetime) -> None:
        """Return once every expected loop has nothing to do until after ``moment``."""
        while not all(
            (until := self._until.get(name)) is not None and until > moment
            for name in self.expected
        ):
            self._changed.clear()
            await self._changed.wait()


class JobRunner:
    """Claims due jobs and runs them; the scheduler runs :meth:`run` while it holds its
    lease.

    Args:
        runtime: the bot's services (a run's context).
        handlers: what runs each job, by (plugin, job name).
        clock: the clock due times are judged by.
        holder: this process's name on its claims.
        lease: how long a claim lasts unrenewed, in seconds.
        fence: the scheduler lease's (name, token) this process holds now.
        waits: where the runner reports its waits.
        poll: the longest wait before looking for jobs other processes scheduled.
    """

    def __init__(
        self,
        runtime: Runtime,
        handlers: Mapping[tuple[str, str], JobHandler],
        *,
        clock: Clock,
        holder: str,
        lease: float,
        fence: FenceSource,
        waits: Waits,
        poll: float,
    ) -> None:
        self._runtime = runtime
        self._handlers = dict(handlers)
        self._plugins = {plugin for plugin, _ in handlers}
        self._clock = clock
        self._holder = holder
        self._lease = lease
        self._fence = fence
        self._waits = waits
        self._poll = poll
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._pruned: datetime | None = None

    def wake(self) -> None:
        """Look for due jobs now (one was scheduled in this process)."""
        self._waits.working(LOOP)  # at once: a test's clock moved right after is not missed
        self._wake.set()

    async def run(self) -> None:
        """Fire due jobs until cancelled; runs cut short are given back."""
        store = self._runtime.store.jobs
        try:
            while True:
                self._wake.clear()  # before looking: a wake-up from now on is not missed
                self._waits.working(LOOP)
                now = self._clock.now()
                try:
                    free = MAX_RUNNING - len(self._running)
                    claimed = []
                    if free > 0:
                        claimed = await store.claim_due(
                            now=now,
                            plugins=self._plugins,
                            holder=self._holder,
                            seconds=self._lease,
                            limit=free,
                            fence=self._fence(),
                        )
                    for record in claimed:
                        self._spawn(record)
                    if claimed and len(claimed) == free:
                        continue  # more may be due
                    due = await store.next_due(self._plugins)
                    await self._prune(now)
                except Exception as exc:  # StoreError, or the driver's own
                    log.warning("scheduled jobs: the database failed (%s); retrying", exc)
                    due = None
                wait = self._poll
                if due is not None and due > now:
                    wait = min(wait, (due - now).total_seconds())
                # a job still due here waits for a run to end (or the lease to come back)
                await self._wait(now + timedelta(seconds=wait))
        finally:
            self._waits.stopped()
            tasks = list(self._running)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait(self, until: datetime) -> None:
        """Sleep on the clock until ``until``, a wake-up, or a run's end."""
        if not self._running:
            self._waits.waiting(LOOP, until)
        sleeper = asyncio.ensure_future(self._clock.sleep_until(until))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([sleeper, waker], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _spawn(self, record: JobRecord) -> None:
        task = asyncio.create_task(self._fire(record), name=f"job-{record.plugin}-{record.id}")
        self._running.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._running.discard(finished)
            self._wake.set()

        task.add_done_callback(done)

    async def _prune(self, now: datetime) -> None:
        if self._pruned is not None and now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        pruned = await self._runtime.store.jobs.prune(now - KEEP_ENDED)
        if pruned:
            log.info("scheduled jobs: deleted %d that ended before %s", pruned, now - KEEP_ENDED)

    # -- one run -------------------------------------------------------------------------

    async def _fire(self, record: JobRecord) -> None:
        """Run one claimed job and finish it; never raises but for cancellation."""
        fence = (self._holder, record.claim_token)
        name = f"{record.plugin}.{record.job} #{record.id}"
        handler = self._handlers.get((record.plugin, record.job))
        try:
            if handler is None:  # pragma: no cover - only handled plugins are claimed
                await self._end(record, fence, "failed", error="no handler")
                return
            if record.attempts > handler.attempts:  # its process died on each try
                error = f"gave up after {handler.attempts} tries cut short"
                log.error("job %s: %s", name, error)
                await self._give_up(record, fence, error)
                return
            run = JobRun(self._runtime, record)
            try:
                await self._run_held(handler, run, record, fence)
            except ClaimLostError:
                raise
            except Exception as exc:
                log.exception(
                    "job %s failed (try %d of %d)", name, record.attempts, handler.attempts
                )
                if record.attempts >= handler.attempts:
                    await self._give_up(record, fence, _why(exc))
                else:
                    delay = min(RETRY_BASE * 2 ** (record.attempts - 1), RETRY_MAX)
                    retry = self._clock.now() + timedelta(seconds=delay)
                    await self._end(
                        record, fence, "pending", due_at=retry, error=_why(exc), ran=False
                    )
                return
            await self._complete(record, fence, run)
        except asyncio.CancelledError:
            await self._let_go(record, fence, name)
            raise
        except ClaimLostError as exc:
            log.warning("job %s: %s; its run is not recorded here", name, exc)
        except Exception:  # the database: the claim lapses and the job runs again
            log.exception("job %s: could not record its run; it runs again later", name)

    async def _run_held(
        self, handler: JobHandler, run: JobRun, record: JobRecord, fence: tuple[str, int]
    ) -> None:
        """Run the handler, renewing the claim every lease/3; a lost claim stops it."""
        store = self._runtime.store.jobs
        task = asyncio.ensure_future(handler.func(run))
        try:
            while True:
                await asyncio.wait([task], timeout=self._lease / 3)
                if task.done():
                    task.result()
                    return
                try:
                    held = await store.renew(record.id, fence[0], fence[1], self._lease)
                except Exception as exc:  # the claim may lapse: the finish is fenced anyway
                    log.warning("job %d: could not renew its claim (%s)", record.id, exc)
                    continue
                if not held:
                    raise ClaimLostError(f"job {record.id} was taken over while it ran")
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _complete(self, record: JobRecord, fence: tuple[str, int], run: JobRun) -> None:
        """:meth:`_done`, carried to its end even if a stop cancels the run meanwhile:
        once the handler has returned the run is complete, and given back it would run
        again and do twice what it did. A cancelled run waits for it, then ends."""
        ending = asyncio.ensure_future(self._done(record, fence, run))
        try:
            await asyncio.shield(ending)
        except asyncio.CancelledError:
            await asyncio.gather(ending, return_exceptions=True)
            raise

    async def _done(self, record: JobRecord, fence: tuple[str, int], run: JobRun) -> None:
        """Store the run's messages with its end, then deliver them."""
        store = self._runtime.store
        drafts: list[OutboundDraft] = []
        for conversation, reply in run.outgoing:
            conversation_id = await store.history.conversation_id(conversation)
            drafts.append(draft_of(conversation_id, conversation.channel, reply, None))
        recurrence = recurrence_of(record)
        if recurrence is None:
            await self._end(record, fence, "done", replies=drafts)
        else:
            following = recurrence.next_after(record.due_at, self._clock.now())
            await self._end(record, fence, "pending", due_at=following, replies=drafts)
        for conversation_id in dict.fromkeys(d.conversation_id for d in drafts):
            await self._runtime.outbox.flush_through(conversation_id)

    async def _give_up(self, record: JobRecord, fence: tuple[str, int], error: str) -> None:
        """A due time tried its handler's attempts: failed, or on to the next time."""
        recurrence = recurrence_of(record)
        if recurrence is None:
            await self._end(record, fence, "failed", error=error)
        else:
            following = recurrence.next_after(record.due_at, self._clock.now())
            await self._end(record, fence, "pending", due_at=following, error=error)

    async def _end(
        self,
        record: JobRecord,
        fence: tuple[str, int],
        status: str,
        *,
        due_at: datetime | None = None,
        error: str | None = None,
        replies: list[OutboundDraft] | None = None,
        ran: bool = True,
    ) -> None:
        await self._runtime.store.jobs.finish(
            record.id,
            fence,
            status=status,
            due_at=due_at,
            error=error,
            replies=replies or [],
            ran=ran,
        )

    async def _let_go(self, record: JobRecord, fence: tuple[str, int], name: str) -> None:
        """A stop cut the run short: give the job back, so the next holder runs it."""
        release = asyncio.ensure_future(self._runtime.store.jobs.release(record.id, fence))
        try:
            await asyncio.shield(release)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.warning("job %s: could not give it back (%s); its claim lapses", name, exc)


def _why(exc: BaseException) -> str:
    """An error as kept with a job: its type and first line, short."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__
