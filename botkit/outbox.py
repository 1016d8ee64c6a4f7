"""The outbox: replies are stored before they are sent and marked once delivered.

Each conversation's replies go out strictly in order. A failed send is retried with
backoff; a short wait is slept on, a long one (flood control measured in minutes) is
scheduled so no worker sits idle; a restart sends whatever was left undelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from botkit.adapter import Adapter
from botkit.exceptions import RateLimitError, ServiceError
from botkit.messages import Reply, SentMessage
from botkit.metrics import Metrics
from botkit.store import Claim, Store, StoredMessage
from botkit.store.models import utcnow

__all__ = ["Outbox", "OutboxPolicy", "delivery_id"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """How hard the outbox tries.

    Attributes:
        max_attempts: sends of one reply before it is marked failed.
        backoff_base: seconds before the second attempt; doubled each time, jittered.
        backoff_max: the longest backoff between attempts.
        inline_wait_max: waits up to this long are slept on; longer ones are scheduled.
    """

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    inline_wait_max: float = 10.0


def delivery_id(outbound_id: int) -> str:
    """The stable id adapters get for one outbox entry."""
    return f"botkit-{outbound_id}"


class Outbox:
    """Delivers stored replies through their channel's adapter."""

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        metrics: Metrics,
        policy: OutboxPolicy = OutboxPolicy(),
        *,
        claim: Callable[[], Claim],
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._claim = claim
        self._adapters = adapters
        self._metrics = metrics
        self._policy = policy
        self._jitter = jitter
        self._locks: dict[int, asyncio.Lock] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def resume(self) -> None:
        """Close streams whose process died, and send what is due and held by no live
        process. Called at start (crash recovery), then periodically."""
        interrupted = await self._store.interrupt_streams()
        if interrupted:
            log.warning("%d streamed replies were interrupted by a stop", interrupted)
        for conversation_id in await self._store.conversations_with_undelivered(now=utcnow()):
            if not self.lock(conversation_id).locked():
                self._spawn(conversation_id)

    def lock(self, conversation_id: int) -> asyncio.Lock:
        """The lock held while a conversation's replies are sent (streaming holds it too)."""
        return self._locks.setdefault(conversation_id, asyncio.Lock())

    async def send_claimed(self, conversation_id: int, rows: list[StoredMessage]) -> None:
        """Send replies just stored already claimed by this process (the dispatcher's
        fast path: nothing earlier of the conversation was waiting)."""
        async with self.lock(conversation_id):
            try:
                for row in rows:
                    if not await self._deliver(row, claimed=True):
                        return
            except Exception:
                await self._hand_back(conversation_id)
                raise

    async def flush(self, conversation_id: int) -> None:
        """Send every due reply of a conversation, oldest first, stopping at one that waits."""
        async with self.lock(conversation_id):
            try:
                await self.flush_locked(conversation_id)
            except Exception:
                await self._hand_back(conversation_id)
                raise

    async def flush_locked(self, conversation_id: int) -> bool:
        """:meth:`flush` for a caller that already holds :meth:`lock`.

        Returns:
            True when nothing of the conversation is left waiting.
        """
        owner = self._claim().owner
        for row in await self._store.pending_outbound(conversation_id):
            if row.status == "sending" and row.claimed_by == owner:
                return False  # this process is sending it right now (the dispatcher)
            if row.status == "sending":
                log.warning("reply %d was being sent when its process stopped; resending", row.id)
            now = utcnow()
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                self._schedule(conversation_id, (row.next_attempt_at - now).total_seconds())
                return False
            if not await self._deliver(row):
                return False
        return True

    async def _hand_back(self, conversation_id: int) -> None:
        """After an unexpected failure (the store), release this process's claims on the
        conversation's replies, so the periodic sweep sends them instead of no one."""
        log.exception("sending replies of conversation %d failed; handed back", conversation_id)
        with contextlib.suppress(Exception):
            await self._store.release_conversation(conversation_id, self._claim().owner)

    async def _deliver(self, row: StoredMessage, *, claimed: bool = False) -> bool:
        """Send one reply with retries; False when it must wait (later rows wait too).

        ``claimed``: the row is already claimed by this process with its first attempt
        counted, so the first try goes straight to the channel.
        """
        adapter = self._adapters.get(row.conversation.channel)
        if adapter is None:
            log.warning(
                "no adapter %r is running; reply %d waits", row.conversation.channel, row.id
            )
            if claimed:  # leave it to whichever process runs that channel
                await self._store.update_outbound(
                    row.id, status="pending", claimed_by=None, claimed_until=None
                )
            return False
        attempts = row.attempts if claimed else row.attempts + 1
        while True:
            if not claimed:
                taken = await self._store.claim(
                    [row.id],
                    self._claim(),
                    status="sending",
                    from_statuses=("pending", "sending"),
                    count_attempt=True,
                )
                if not taken:
                    return False  # another live process is sending it; later rows wait
            claimed = False
            reply = Reply(
                text=row.text,
                markup="plain" if row.markup == "plain" else "markdown",
                reply_to=row.meta.get("reply_to"),
                metadata=row.meta.get("metadata") or {},
            )
            try:
                sent = await adapter.send(row.conversation, reply, delivery_id=delivery_id(row.id))
            except ServiceError as exc:
                delay = self._delay(exc, attempts)
                if not exc.retryable or attempts >= self._policy.max_attempts:
                    await self._fail(row, attempts, exc)
                    return True
                if delay > self._policy.inline_wait_max:
                    await self._store.update_outbound(
                        row.id,
                        status="pending",
                        error=str(exc),
                        next_attempt_at=utcnow() + timedelta(seconds=delay),
                    )
                    self._schedule(row.conversation_id, delay)
                    log.info("reply %d rescheduled in %.0f s: %s", row.id, delay, exc)
                    return False
                log.info("reply %d: attempt %d failed (%s); retrying", row.id, attempts, exc)
                await asyncio.sleep(delay)
                attempts += 1
                continue
            except Exception as exc:  # a bug in an adapter must not wedge the conversation
                log.exception("adapter %r crashed sending reply %d", adapter.name, row.id)
                await self._fail(row, attempts, exc)
                return True
            await self.mark_delivered(row.id, sent)
            return True

    async def mark_delivered(self, outbound_id: int, sent: SentMessage) -> None:
        """Record that a reply reached its channel."""
        await self._store.update_outbound(
            outbound_id,
            status="delivered",
            external_id=sent.external_id,
            error=None,
            next_attempt_at=None,
        )
        self._metrics.messages_out.labels(sent.conversation.channel).inc()

    async def _fail(self, row: StoredMessage, attempts: int, exc: BaseException) -> None:
        log.error(
            "reply %d to %s failed for good after %d attempt(s): %s",
            row.id,
            row.conversation.key,
            attempts,
            exc,
        )
        await self._store.update_outbound(row.id, status="failed", error=str(exc)[:2000])
        self._metrics.failures.labels("send").inc()

    def _delay(self, exc: ServiceError, attempts: int) -> float:
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return max(exc.retry_after, 0.0)
        base = min(self._policy.backoff_base * 2 ** (attempts - 1), self._policy.backoff_max)
        return float(base * (0.5 + self._jitter() / 2))

    def _schedule(self, conversation_id: int, delay: float) -> None:
        if self._closed or conversation_id in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(conversation_id, None)
            self._spawn(conversation_id)

        self._timers[conversation_id] = loop.call_later(max(delay, 0.0), fire)

    def _spawn(self, conversation_id: int) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._flush_quietly(conversation_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_quietly(self, conversation_id: int) -> None:
        """A background flush: its failure is logged and handed back, never lost."""
        with contextlib.suppress(Exception):
            await self.flush(conversation_id)

    async def close(self) -> None:
        """Stop scheduling; wait for sends under way (undelivered replies stay stored)."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
