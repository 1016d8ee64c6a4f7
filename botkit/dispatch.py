"""The dispatcher: runs accepted messages through the pipeline.

Messages of one conversation are handled strictly in order, one at a time; different
conversations run concurrently, at most ``max_in_flight`` at once. With the ``coalesce``
burst policy, messages that arrive while a reply is being generated are answered
together, once. After a crash, ``resume()`` picks up everything accepted but not finished.

Order holds across processes and crashes: a conversation's messages are taken in id
order, and a message never goes before an older one of its conversation that is still
unanswered, whoever holds it (on PostgreSQL, where another process may, the store is
asked before each answer).

Outages wait: when the model (or the database) is down, the message is put back with a
growing backoff for up to ``outage_horizon`` seconds after it arrived, the conversation
waits behind it, and the user is told once that the answer is delayed. Only errors that
retrying cannot fix (a refused request, a budget, a bug) end a message as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import deque
from datetime import timedelta
from typing import Literal, TypeVar

from botkit.context import Context
from botkit.exceptions import (
    AuthenticationError,
    ClaimLostError,
    QuotaExceededError,
    RequestRejectedError,
    ServiceError,
    StoreError,
    StoreUnavailableError,
)
from botkit.landing import until_landed
from botkit.logs import log_context
from botkit.messages import Attachment, Message, Reply, Sender
from botkit.outbox import draft_of, reply_of
from botkit.routing import Pipeline
from botkit.runtime import Runtime
from botkit.store import Fence, OutboundDraft, StoredMessage
from botkit.store.models import utcnow
from botkit.tools import unfinished_answer
from botkit.turn import Turn

__all__ = ["APOLOGY", "Dispatcher"]

log = logging.getLogger(__name__)

T = TypeVar("T")
APOLOGY = "Sorry, I couldn't answer that just now. Please try again in a moment."
# the model refused the bot's configuration: trying again will not help
CONFIG_APOLOGY = (
    "Sorry, I can't answer: the assistant is not set up correctly. Whoever runs this bot"
    " has been told."
)
BurstPolicy = Literal["queue", "coalesce"]
UNFINISHED = ("pending", "processing")
OUTAGE_BACKOFF_MAX = 300.0  # the longest wait between two tries of a waiting message
# how soon to look again at a conversation waiting behind a message another process holds
RECHECK_BLOCKED = 1.0


class Dispatcher:
    """Per-conversation ordering, cross-conversation concurrency, bounded in-flight work."""

    def __init__(
        self,
        runtime: Runtime,
        pipeline: Pipeline,
        *,
        max_in_flight: int = 32,
        burst: BurstPolicy = "queue",
        outage_horizon: float = 3600.0,
        outage_retry: float = 5.0,
        delay_notice: str = "",
    ) -> None:
        self._runtime = runtime
        self._pipeline = pipeline
        self._burst = burst
        self._outage_horizon = outage_horizon
        self._outage_retry = outage_retry
        self._delay_notice = delay_notice
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queues: dict[int, deque[int]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._known: set[int] = set()
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._fresh: dict[int, tuple[Message, float]] = {}
        # conversations whose oldest unanswered message waits (an outage, or another
        # process holds it): newer ones wait behind it, and a sweep takes them in order
        self._blocked: set[int] = set()
        self._noticed: set[int] = set()  # conversations told of the outage they wait out
        self._wake: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[int]] = set()
        self._accepting = True

    def submit(
        self, message_id: int, conversation_id: int, message: Message | None = None
    ) -> None:
        """Queue an accepted message for its conversation's worker.

        Args:
            message_id: its store id.
            conversation_id: its conversation's store id.
            message: the message itself, when this process just accepted (and so
                claimed) it: it is then handled without reading it back or claiming it
                again while that claim is surely live.
        """
        if conversation_id in self._blocked:
            return  # it waits behind an older message; the sweep takes both in order
        self._queue(message_id, conversation_id, message)

    def _queue(self, message_id: int, conversation_id: int, message: Message | None) -> None:
        if message_id in self._known or not self._accepting:
            return
        self._known.add(message_id)
        if message is not None:
            self._fresh[message_id] = (message, time.monotonic() + self._runtime.lease / 2)
        self._queues.setdefault(conversation_id, deque()).append(message_id)
        self._runtime.metrics.queue_depth.inc()
        if conversation_id not in self._workers:
            task = asyncio.create_task(self._work(conversation_id), name=f"conv-{conversation_id}")
            self._workers[conversation_id] = task

    async def resume(self) -> int:
        """Queue the unfinished messages this process may take, each conversation's in
        order up to the first it may not (held by another live process, or waiting for
        a retry); returns how many were queued.

        Called at start (crash recovery), then periodically and when a waiting message
        is due, so a message whose process died is taken over once its claim lapses.
        """
        runtime = self._runtime
        now = utcnow() + runtime.claims.clock_offset
        rows = await runtime.store.inbound.resumable(now=now)
        stopped: set[int] = set()
        soonest: float | None = None
        queued = 0
        for row in rows:
            conversation_id = row.conversation_id
            if conversation_id in stopped:
                continue
            mine = row.free or row.claimed_by == runtime.owner
            if not mine or (row.due is not None and row.due > now):
                stopped.add(conversation_id)
                self._blocked.add(conversation_id)
                wait = (row.due - now).total_seconds() if mine and row.due else RECHECK_BLOCKED
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            self._blocked.discard(conversation_id)
            if row.id not in self._known:
                if row.claimed_by not in (None, runtime.owner):  # its process's claim lapsed
                    runtime.metrics.takeovers.labels("message").inc()
                self._queue(row.id, conversation_id, None)
                queued += 1
        # a conversation with nothing unfinished left waits for nothing any more
        self._blocked &= stopped
        if soonest is not None:
            self._wake_in(soonest)
        if queued:
            log.info("resuming %d unfinished message(s)", queued)
        return queued

    def _wake_in(self, delay: float) -> None:
        """Sweep again in ``delay`` seconds (a waiting message is due then)."""
        if not self._accepting:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        if self._wake is not None and self._wake.when() <= when:
            return
        if self._wake is not None:
            self._wake.cancel()
        self._wake = loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        self._wake = None
        task = asyncio.create_task(self._sweep_quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep_quietly(self) -> int:
        try:
            return await self.resume()
        except StoreError as exc:  # the periodic sweep tries again
            log.warning("could not look for waiting messages: %s", exc)
            return 0

    async def wait_done(self, message_id: int) -> None:
        """Wait until ``message_id`` is finished; returns at once if it is not pending."""
        if message_id not in self._known:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(message_id, []).append(future)
        await future

    async def idle(self) -> None:
        """Wait until no message is queued or in progress."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Stop taking work; let work under way finish for up to ``grace`` seconds.

        Whatever is still unfinished then is cancelled and stays stored as accepted, so
        the next start answers it: nothing is lost, nothing is answered twice.
        """
        self._accepting = False
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        for queue in self._queues.values():
            self._finish(list(queue))  # not started: stays "pending" in the store
            queue.clear()
        workers = list(self._workers.values())
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if not workers:
            return
        _, pending = await asyncio.wait(workers, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "%d conversation(s) cut short by the stop; resumed next start", len(pending)
            )
            await asyncio.gather(*pending, return_exceptions=True)

    async def _work(self, conversation_id: int) -> None:
        queue = self._queues[conversation_id]
        try:
            while queue and self._accepting:
                if self._burst == "coalesce":
                    batch = list(queue)
                    queue.clear()
                else:
                    batch = [queue.popleft()]
                async with self._slots:
                    try:
                        with log_context(conversation_id=conversation_id, message_id=batch[-1]):
                            goes_on = await self._process(conversation_id, batch)
                    except Exception:
                        # a store failure (say): hand the work back so a sweep retries it
                        log.exception("messages %s could not be handled; released", batch)
                        self._runtime.metrics.failures.labels("dispatch").inc()
                        with contextlib.suppress(Exception):
                            await self._runtime.store.claims.release(batch, self._runtime.owner)
                        goes_on = True
                    finally:
                        self._finish(batch)
                if not goes_on:  # the rest waits behind it; the sweep takes them in order
                    self._blocked.add(conversation_id)
                    self._finish(list(queue))
                    queue.clear()
                    self._wake_in(RECHECK_BLOCKED)
        finally:
            self._workers.pop(conversation_id, None)
            if not queue:
                self._queues.pop(conversation_id, None)

    def _finish(self, batch: list[int]) -> None:
        for message_id in batch:
            self._known.discard(message_id)
            self._fresh.pop(message_id, None)
            self._runtime.metrics.queue_depth.dec()
            for future in self._waiters.pop(message_id, []):
                if not future.done():
                    future.set_result(None)

    async def _process(self, conversation_id: int, batch: list[int]) -> bool:
        """Answer ``batch``; False when the conversation must wait (an older message is
        unanswered, or this one waits out an outage)."""
        runtime = self._runtime
        store = runtime.store
        now = time.monotonic()
        fresh = [self._fresh.get(i) for i in batch]
        earlier: list[StoredMessage] = []
        attempts = 0
        resumed = False
        if all(f is not None and f[1] > now for f in fresh):
            # accepted by this process moments ago: our claim on them is live, token 1
            messages = [f[0] for f in fresh if f is not None]
            fence: Fence = dict.fromkeys(batch, 1)
        else:
            # resumed work: another live process may hold some of it; take what is free
            fence = await store.claims.claim(
                batch, runtime.claim(), status="processing", from_statuses=UNFINISHED
            )
            if not fence:
                return True
            rows = await store.history.messages(list(fence))
            messages = [_message_of(row) for row in rows]
            attempts = max(row.attempts for row in rows)
            resumed = True
            # what an earlier try posted: this answer takes its place
            earlier = await store.outbound.earlier_replies(conversation_id, list(fence))
        for message in messages:  # the body only where [logging] bodies = true
            log.debug(
                "handling message %s from %s",
                message.id,
                message.sender.id,
                extra={"body": message.text},
            )
        if (
            runtime.shared or conversation_id in self._blocked
        ) and await store.inbound.older_unfinished(conversation_id, min(fence)):
            await store.claims.release(list(fence), runtime.owner)
            log.info("messages %s wait behind an older unanswered message", list(fence))
            return False
        # group chatter an adapter passes on as context: kept for history, not answered
        chatter = [m.id for m in messages if m.metadata.get("addressed") is False]
        if chatter:
            await store.inbound.set_status([i for i in chatter if i is not None], "context")
            messages = [m for m in messages if m.metadata.get("addressed") is not False]
            if not messages:
                return True
        ids = [m.id for m in messages if m.id is not None]
        message = _combine(messages)
        turn = Turn(
            message,
            conversation_id,
            ids=ids,
            fence={i: fence[i] for i in ids},
            attempts=attempts,
            resumed=resumed,
            annotations=dict(message.metadata),
            calls=[],
            settles=[],
            earlier=earlier,
        )
        ctx = Context(runtime, message, conversation_id, turn=turn)
        landed = False
        try:
            landed = await self._answer(turn, ctx)
            return landed
        except ClaimLostError as exc:
            if await self._finished_here(turn):
                # a finish whose commit went unheard (the connection lost) and was tried
                # again: it landed the first time, with its calls
                log.info("messages %s were finished by this process already", ids)
            else:
                log.warning("messages %s: %s; left to the process that holds them", ids, exc)
                with contextlib.suppress(Exception):  # the calls were paid for all the same
                    await store.usage.record_calls(turn.calls or [])
            # a finish whose commit went unheard (the connection lost) stored its replies:
            # they go out as any waiting reply does
            await runtime.outbox.flush(conversation_id)
            return True
        finally:
            # a postponed or lost message's streamed reply stays as it is: the next try
            # of the answer edits it
            runtime.outbox.settled(turn.settles or [], message.channel, landed=landed)

    async def _answer(self, turn: Turn, ctx: Context) -> bool:
        runtime, store, message = self._runtime, self._runtime.store, turn.message
        conversation_id, ids = turn.conversation_id, turn.ids
        error: str | None = None
        try:
            result = await self._pipeline.handle(message, ctx)
        except asyncio.CancelledError:
            # stays unfinished: answered after the next start; the calls made are paid for
            with contextlib.suppress(Exception):
                await asyncio.shield(store.usage.record_calls(turn.calls or []))
            raise
        except ClaimLostError:
            raise
        except Exception as exc:
            if _waits_out(exc) and self._within_horizon(message):
                await self._postpone(turn, exc)
                return False
            text = APOLOGY
            if _waits_out(exc):
                log.warning("messages %s failed: the outage outlasted the horizon: %s", ids, exc)
            elif _misconfigured(exc):
                # not the user's doing and not passing: the operator must act
                log.error(
                    "messages %s not answered: the model refused the bot's configuration"
                    " (check the API key and llm.model): %s",
                    ids,
                    _one_line(str(exc)),
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                runtime.metrics.failures.labels("model_config").inc()
                text = CONFIG_APOLOGY
            elif isinstance(exc, ServiceError):  # expected: one line, the traceback with -v
                log.warning(
                    "messages %s not answered: %s",
                    ids,
                    _one_line(str(exc)),
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
            else:  # a bug: the whole traceback
                log.exception("handling message %s failed", ids)
            runtime.metrics.failures.labels("handle").inc()
            reason = exc.reason if isinstance(exc, QuotaExceededError) else None
            if reason is not None:
                text = f"Sorry, I can't answer right now: {reason}"
            if turn.done:  # a tool did something: say what, rather than invite a second try
                text = unfinished_answer(turn.done, reason)
            reply = reply_of(Reply(text, "plain"), message)
            status, replies, error = "failed", [reply], f"{type(exc).__name__}: {exc}"
        else:
            replies = []
            if result is not None:
                reply = reply_of(result, message)
                if reply.text.strip() or reply.attachments:  # a spoken reply may be audio only
                    replies.append(reply)
            status = "done" if replies or turn.replied else "skipped"
            self._noticed.discard(conversation_id)  # answered: any outage is over for it
        if turn.earlier:
            # an earlier try posted replies: these take their places, then the message
            # is finished (a crash between the two replaces them again, nothing more)
            for reply in replies:
                await runtime.outbox.reply(turn, reply)
            replies = []
        drafts = [draft_of(conversation_id, message.channel, r, message) for r in replies]
        calls = turn.calls or []
        claim = runtime.claim()
        taken_at = time.monotonic()  # the replies' claim, if they are stored claimed
        try:
            finished = await until_landed(
                lambda: store.inbound.finish(
                    ids,
                    status,
                    drafts,
                    error=error[:2000] if error else None,
                    claim=claim,
                    calls=calls,
                    fence=turn.fence,
                    settles=turn.settles or (),
                ),
                "finish a message",
            )
        except ClaimLostError:
            raise  # its handler records the calls, unless this finish stored them
        except Exception:
            with contextlib.suppress(Exception):  # the calls were paid for all the same
                await store.usage.record_calls(calls)
            raise
        outbox = runtime.outbox
        if finished.claimed:  # nothing else waits: send these now, already claimed
            await outbox.send_claimed(
                conversation_id,
                [_outgoing(i, d, message) for i, d in zip(finished.out_ids, drafts, strict=True)],
                taken_at,
            )
        elif drafts:
            await outbox.flush(conversation_id)
        return True

    async def _finished_here(self, turn: Turn) -> bool:
        """Whether the turn's messages were finished under this process's claim on them."""
        if turn.fence is None:
            return False
        try:
            return await self._runtime.store.inbound.finished_under(
                self._runtime.owner, turn.fence
            )
        except Exception:  # the database away again: count the calls rather than lose them
            return False

    def _within_horizon(self, message: Message) -> bool:
        age = (utcnow() - message.received_at).total_seconds()
        return age < self._outage_horizon

    async def _postpone(self, turn: Turn, exc: Exception) -> None:
        """Put the turn's messages back until a retry is due, and tell the user once."""
        runtime = self._runtime
        base = self._outage_retry * 2 ** min(turn.attempts, 20)
        delay = min(base, OUTAGE_BACKOFF_MAX) * (0.75 + random.random() / 2)
        due = utcnow() + runtime.claims.clock_offset + timedelta(seconds=delay)
        reason = f"{type(exc).__name__}: {exc}"
        claim = runtime.claim()
        await until_landed(
            lambda: runtime.store.inbound.postpone(
                turn.ids, claim, turn.fence or {}, due=due, error=reason
            ),
            "put a message back",
        )
        log.warning(
            "messages %s wait %.0f s for a retry (try %d): %s",
            turn.ids,
            delay,
            turn.attempts + 1,
            _one_line(str(exc)),
        )
        runtime.metrics.failures.labels("postponed").inc()
        with contextlib.suppress(Exception):  # the calls were paid for all the same
            await runtime.store.usage.record_calls(turn.calls or [])
        if turn.calls is not None:
            turn.calls.clear()
        conversation_id = turn.conversation_id
        if self._delay_notice and conversation_id not in self._noticed:
            self._noticed.add(conversation_id)
            notice = draft_of(
                conversation_id, turn.message.channel, Reply(self._delay_notice, "plain"), None
            )
            await until_landed(lambda: runtime.store.outbound.add(notice), "queue a notice")
            await runtime.outbox.flush(conversation_id)
        self._wake_in(delay)


def _misconfigured(exc: BaseException) -> bool:
    """Whether the model refused the bot's own set-up (a bad key, no access, no such
    model): retrying cannot help, and the user should not be asked to."""
    if not isinstance(exc, ServiceError) or exc.service != "llm":
        return False
    return isinstance(exc, AuthenticationError) or (
        isinstance(exc, RequestRejectedError) and exc.status == 404
    )


def _waits_out(exc: BaseException) -> bool:
    """Whether retrying later can fix ``exc``: a service down or limiting us, or the
    database away."""
    if isinstance(exc, ServiceError):
        return exc.retryable
    return isinstance(exc, StoreUnavailableError)


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:300]


def _outgoing(outbound_id: int, draft: OutboundDraft, message: Message) -> StoredMessage:
    """A reply just stored (claimed, first attempt counted), as the outbox sees it."""
    return StoredMessage(
        id=outbound_id,
        conversation_id=draft.conversation_id,
        conversation=message.conversation,
        direction="out",
        text=draft.text,
        status="sending",
        markup=draft.markup,
        reply_to_id=draft.reply_to_id,
        attempts=1,
        meta=dict(draft.meta),
    )


def _combine(messages: list[Message]) -> Message:
    """One message for handlers; a coalesced burst reads as its last message with the
    texts and attachments of all."""
    last = messages[-1]
    if len(messages) == 1:
        return last
    return dataclasses.replace(
        last,
        text="\n".join(m.text for m in messages if m.text),
        attachments=tuple(a for m in messages for a in m.attachments),
        metadata={**last.metadata, "coalesced": len(messages)},
    )


def _message_of(row: StoredMessage) -> Message:
    """A stored message as handlers see it (a coalesced burst is joined by ``_combine``)."""
    return Message(
        conversation=row.conversation,
        sender=Sender(id=row.sender_id or "", name=row.sender_name),
        text=row.text,
        external_id=row.external_id or "",
        attachments=tuple(
            Attachment(
                name=str(a.get("name", "")),
                content_type=str(a.get("content_type", "application/octet-stream")),
                size=a.get("size"),
                url=a.get("url"),
            )
            for a in row.attachments
        ),
        metadata=row.meta,
        received_at=row.created_at or utcnow(),
        id=row.id,
    )
