"""The outbox: the one place that sends and edits replies on a channel.

A reply is stored before it is sent and marked once delivered. Each conversation's
replies go out strictly in order. A failed send is retried with backoff; a short wait
is slept on, a long one (flood control measured in minutes) is scheduled so no worker
sits idle; a restart sends whatever was left undelivered.

How a reply gets sent:

- a handler's returned reply is stored with its message's outcome (the dispatcher's
  ``store.inbound.finish``), then delivered by :meth:`Outbox.send_claimed` or :meth:`flush`;
- ``ctx.reply`` is :meth:`Outbox.reply`: stored, then flushed;
- a streamed reply is a live reply (:meth:`Outbox.live`, ``botkit.live``): posted once,
  then edited in place, the posted message's id and the text it shows stored as it goes;
- every reply of an answer that is tried again (its process stopped, or the model
  failed mid-answer) takes the place of the reply the earlier try posted: the channel
  message is edited, not posted again (``Turn.earlier``).

Every state change is fenced: it happens only while this process holds the reply's
claim with the token it took it with, and no send or edit starts unless this process's
claims are surely live (``Claims.live``). The one window left: a send already on the
wire when the claim lapsed, which the process that took the reply over sends again
with the same ``delivery_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botkit.adapter import Adapter
from botkit.claims import Claims, sending_under
from botkit.exceptions import (
    ClaimLostError,
    RateLimitError,
    ServiceError,
    StoreUnavailableError,
)
from botkit.landing import until_landed
from botkit.live import LiveReply, delivery_id, edit_with_retry, shown_by
from botkit.logs import log_context
from botkit.messages import Reply, SentMessage
from botkit.metrics import Metrics, error_kind
from botkit.store import Fence, OutboundDraft, OutboundSettle, Store, StoredMessage
from botkit.store.models import utcnow
from botkit.store.records import EARLIER_OUT
from botkit.text import split_text
from botkit.turn import Turn, draft_of, files_of, reply_of, without_file_data

__all__ = ["Outbox", "OutboxPolicy", "delivery_id", "draft_of", "reply_of"]

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


def reply_from_row(row: StoredMessage) -> Reply:
    """The reply a stored outbox entry holds."""
    return Reply(
        text=row.text,
        markup="plain" if row.markup == "plain" else "markdown",
        reply_to=row.meta.get("reply_to"),
        metadata=row.meta.get("metadata") or {},
        attachments=files_of(row.meta),
    )


class Outbox:
    """Delivers stored replies through their channel's adapter."""

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        metrics: Metrics,
        policy: OutboxPolicy = OutboxPolicy(),
        *,
        claims: Claims,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._claims = claims
        self._adapters = adapters
        self._metrics = metrics
        self._policy = policy
        self._jitter = jitter
        self._locks: dict[int, asyncio.Lock] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._live: set[int] = set()  # live replies this process is writing now
        self._settling: set[int] = set()  # live replies written, marked with their finish
        self._sending: set[int] = set()  # replies the dispatcher is about to send

    @property
    def store(self) -> Store:
        """The store replies are kept in."""
        return self._store

    @property
    def claims(self) -> Claims:
        """This process's claims (fencing every change the outbox makes)."""
        return self._claims

    def send_failed(self, adapter: Adapter) -> Callable[[ServiceError], None]:
        """Counts a change of a posted message ``adapter``'s channel refused (an edit, a
        stream's end) among its send failures, as a refused send is."""
        counter = self._metrics.send_failures

        def failed(exc: ServiceError) -> None:
            counter.labels(adapter.name, error_kind(exc)).inc()

        return failed

    async def resume(self) -> None:
        """Close streams whose process died (and this process's own that nothing writes
        any more), and send what is due and held by no live process, or by this one but
        left behind. Called at start (crash recovery), then periodically."""
        owner = self._claims.owner
        interrupted = await self._store.outbound.interrupt_streams(
            owner=owner, live=self._live | self._settling
        )
        if interrupted:
            log.warning("%d streamed replies were interrupted by a stop", interrupted)
        for conversation_id in await self._store.outbound.conversations_with_undelivered(
            now=utcnow(), owner=owner
        ):
            if not self.lock(conversation_id).locked():
                self._spawn(conversation_id)

    def wake(self, conversation_id: int) -> None:
        """Flush a conversation in the background (a reply a person set back to pending):
        the caller does not wait through the sends' retries and backoff."""
        self._spawn(conversation_id)

    def settling(self, row_id: int) -> None:
        """A live reply is written and waits for its message's finish to be marked
        delivered: no sweep may close it as interrupted meanwhile."""
        self._settling.add(row_id)

    def settled(self, settles: Sequence[OutboundSettle], channel: str, *, landed: bool) -> None:
        """The finish carrying ``settles`` ended (``landed``: it was stored)."""
        for settle in settles:
            self._settling.discard(settle["b_id"])
            if landed:
                self._metrics.messages_out.labels(channel).inc()

    def lock(self, conversation_id: int) -> asyncio.Lock:
        """The lock held while a conversation's replies are sent (streaming holds it too)."""
        return self._locks.setdefault(conversation_id, asyncio.Lock())

    async def send_claimed(
        self, conversation_id: int, rows: list[StoredMessage], taken_at: float
    ) -> None:
        """Send replies just stored already claimed by this process (the dispatcher's
        fast path: nothing earlier of the conversation was waiting); a new row's fencing
        token is 1, and ``taken_at`` when the statement that claimed them was sent."""
        ids = {row.id for row in rows}
        self._sending |= ids  # before any wait: a flush meanwhile leaves them to us
        try:
            async with self.lock(conversation_id):
                try:
                    for row in rows:
                        if not await self._deliver(row, token=1, taken_at=taken_at):
                            return
                except Exception:
                    await self._hand_back(conversation_id)
                    raise
        finally:
            self._sending -= ids

    async def reply(self, turn: Turn, reply: Reply) -> None:
        """Send a reply of ``turn`` now (``ctx.reply``): stored, then sent in order; or,
        when an earlier try of the turn posted a reply in its place, that one edited."""
        earlier = turn.take_earlier()
        draft = turn.draft(reply)
        if earlier is not None:
            await self.replace(earlier, draft)
            return
        await self._store.outbound.add(draft, held=self.held(turn))
        await self.flush(turn.conversation_id)

    def held(self, turn: Turn) -> tuple[str, Fence] | None:
        """What a reply of ``turn`` is stored under: its messages, still held by this
        process with the tokens it took them with (``store.outbound.add``), so a process
        that lost them to another (it stalled past its lease) stores no second answer."""
        return None if turn.fence is None else (self._claims.owner, turn.fence)

    async def replace(self, earlier: StoredMessage, draft: OutboundDraft) -> None:
        """Make the reply ``earlier`` (posted, queued or cut short by an earlier try of an
        answer) say ``draft``'s text: the channel message is edited where the channel
        can; otherwise the entry is sent again with the new text."""
        conversation_id = earlier.conversation_id
        async with self.lock(conversation_id):
            try:
                await self._replace_locked(earlier, draft)
            except ClaimLostError as exc:
                log.warning("reply %d not replaced: %s", earlier.id, exc)

    async def claim_earlier(
        self, earlier: StoredMessage, *, status: str = "sending"
    ) -> tuple[int, float] | None:
        """Claim the reply ``earlier`` to replace it: its fencing token and when it was
        taken, or ``None`` if another process kept it for a whole lease.

        It can still be held elsewhere: a process that stalled past its lease renews
        what nobody took from it yet when it wakes, and then lets go (it closes its
        stream as interrupted, or sends the reply and marks it delivered). Waiting for
        that, rather than posting the new answer beside it, keeps one channel message.
        """
        started = time.monotonic()
        while True:
            taken_at = time.monotonic()
            fence = await self._store.claims.claim(
                [earlier.id],
                self._claims.claim(),
                status=status,
                from_statuses=(*EARLIER_OUT, "streaming"),
            )
            if fence:
                return fence[earlier.id], taken_at
            if taken_at - started > self._claims.lease or not self._claims.live(started):
                return None
            await asyncio.sleep(min(1.0, self._claims.lease / 10))

    async def _replace_locked(self, earlier: StoredMessage, draft: OutboundDraft) -> None:
        owner = self._claims.owner
        taken = await self.claim_earlier(earlier)
        if taken is None:
            # another live process kept delivering that reply: it answers the same
            # message, so this answer would be a second one
            log.warning(
                "reply %d to message %s is being delivered by another process; this answer"
                " is not sent as well",
                earlier.id,
                draft.reply_to_id,
            )
            return
        token, taken_at = taken
        adapter = self._adapters.get(earlier.conversation.channel)
        pieces = split_text(draft.text, adapter.capabilities.max_length) if adapter else []
        first = pieces[0] if pieces else draft.text
        sent = await shown_by(adapter, earlier) if adapter is not None else None
        if (
            adapter is not None
            and sent is not None
            and adapter.capabilities.edits
            and first.strip()
        ):
            edited = sent if sent.text == first else None
            if edited is None and self._claims.live(taken_at):
                with sending_under(self._claims, taken_at):
                    edited = await edit_with_retry(
                        adapter, sent, first, failed=self.send_failed(adapter)
                    )
            if edited is not None:
                await self._store.outbound.update(
                    earlier.id,
                    fence=(owner, token),
                    text=first,
                    status="delivered",
                    error=None,
                    claimed_by=None,
                    claimed_until=None,
                )
                for rest in pieces[1:]:
                    await self._store.outbound.add(dataclasses.replace(draft, text=rest))
                await self.flush_locked(draft.conversation_id)
                return
        # nothing shown that could be edited: the entry goes out (again) with the new text
        log.info("reply %d is sent again with the new answer", earlier.id)
        await self._store.outbound.update(
            earlier.id,
            fence=(owner, token),
            text=draft.text,
            markup=draft.markup,
            status="pending",
            claimed_by=None,
            claimed_until=None,
            next_attempt_at=None,
        )
        await self.flush_locked(draft.conversation_id)

    @contextlib.asynccontextmanager
    async def live(self, turn: Turn, reply: Reply) -> AsyncIterator[LiveReply]:
        """A live reply of ``turn`` (streaming), holding the conversation's send lock
        while it is written. Earlier replies of the conversation go first; when one of
        them must wait (a retry later), the live reply only collects its text and is
        queued behind it when finished."""
        conversation_id = turn.conversation_id
        async with self.lock(conversation_id):
            waiting = not await self.flush_locked(conversation_id)
            adapter = self._adapters[turn.message.channel]
            live = await LiveReply.open(self, turn, adapter, reply, queue_only=waiting)
            if live.row_id is not None:
                self._live.add(live.row_id)
            try:
                yield live
            finally:
                if live.row_id is not None:
                    self._live.discard(live.row_id)

    async def flush(self, conversation_id: int) -> None:
        """Send every due reply of a conversation, oldest first, stopping at one that waits."""
        async with self.lock(conversation_id):
            try:
                await self.flush_locked(conversation_id)
            except Exception:
                await self._hand_back(conversation_id)
                raise

    async def flush_through(self, conversation_id: int) -> None:
        """:meth:`flush`, carried to its end even if the caller is cancelled.

        For a caller whose message is already stored when it flushes (a job that
        finished, a plugin's notice), and which a stop may cancel: a send cut between
        reaching the channel and being marked delivered is in doubt, and the next
        process sends it again unless the channel can say it got it. The flush runs in
        a task of the outbox's own, which :meth:`close` waits for.
        """
        if self._closed:
            await self.flush(conversation_id)
            return
        await asyncio.shield(self._own(self.flush(conversation_id)))

    async def flush_locked(self, conversation_id: int) -> bool:
        """:meth:`flush` for a caller that already holds :meth:`lock`.

        Returns:
            True when nothing of the conversation is left waiting.
        """
        for row in await self._store.outbound.pending(conversation_id):
            if row.id in self._sending:
                return False  # this process is sending it right now (the dispatcher)
            in_doubt = row.status == "sending"  # its process stopped while sending it
            if in_doubt:
                log.warning("reply %d was being sent when its process stopped", row.id)
            now = utcnow()
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                self._schedule(conversation_id, (row.next_attempt_at - now).total_seconds())
                return False
            if not await self._deliver(row, in_doubt=in_doubt):
                return False
        return True

    async def _hand_back(self, conversation_id: int) -> None:
        """After an unexpected failure (the store), release this process's claims on the
        conversation's replies, so the periodic sweep sends them instead of no one."""
        log.exception("sending replies of conversation %d failed; handed back", conversation_id)
        with contextlib.suppress(Exception):
            await self._store.claims.release_conversation(conversation_id, self._claims.owner)

    async def _deliver(
        self,
        row: StoredMessage,
        *,
        token: int | None = None,
        taken_at: float = 0.0,
        in_doubt: bool = False,
    ) -> bool:
        """:meth:`_send_row`, its log lines naming the reply and its conversation."""
        with log_context(conversation_id=row.conversation_id, message_id=row.id):
            return await self._send_row(row, token=token, taken_at=taken_at, in_doubt=in_doubt)

    async def _send_row(
        self,
        row: StoredMessage,
        *,
        token: int | None = None,
        taken_at: float = 0.0,
        in_doubt: bool = False,
    ) -> bool:
        """Send one reply with retries; False when it must wait (later rows wait too).

        ``token``: the row is already claimed by this process with that fencing token
        (taken at ``taken_at``) and its first attempt counted, so the first try goes
        straight to the channel.
        ``in_doubt``: an earlier send may have reached the channel; the adapter is asked
        (``find_sent``) before it is sent again.
        """
        owner = self._claims.owner
        adapter = self._adapters.get(row.conversation.channel)
        if adapter is None:
            log.warning(
                "no adapter %r is running; reply %d waits", row.conversation.channel, row.id
            )
            if token is not None:  # leave it to whichever process runs that channel
                await self._store.outbound.update(
                    row.id,
                    fence=(owner, token),
                    status="pending",
                    claimed_by=None,
                    claimed_until=None,
                )
            return False
        attempts = row.attempts if token is not None else row.attempts + 1
        try:
            while True:
                if token is None:
                    taken_at = time.monotonic()
                    taken = await self._store.claims.claim(
                        [row.id],
                        self._claims.claim(),
                        status="sending",
                        from_statuses=("pending", "sending"),
                        count_attempt=True,
                    )
                    if not taken:
                        return False  # another live process is sending it; later rows wait
                    token = taken[row.id]
                if not self._claims.live(taken_at):
                    log.warning("reply %d not sent: this process's claims may have lapsed", row.id)
                    return False
                fence = (owner, token)
                token = None  # a retry claims again, counting the attempt
                try:
                    found = None
                    if in_doubt:
                        found = await adapter.find_sent(row.conversation, delivery_id(row.id))
                    if found is not None:
                        log.info("reply %d had reached the channel; not sent again", row.id)
                        sent = found
                    else:
                        with sending_under(self._claims, taken_at):
                            sent = await adapter.send(
                                row.conversation,
                                reply_from_row(row),
                                delivery_id=delivery_id(row.id),
                            )
                except (ServiceError, StoreUnavailableError) as exc:
                    # a channel down or limiting us, or the adapter's own bookkeeping
                    # unreachable with the database: tried again later
                    self._metrics.send_failures.labels(adapter.name, error_kind(exc)).inc()
                    delay = self._delay(exc, attempts)
                    retryable = not isinstance(exc, ServiceError) or exc.retryable
                    if not retryable or attempts >= self._policy.max_attempts:
                        await self._fail(row, attempts, exc, fence)
                        return True
                    if delay > self._policy.inline_wait_max:
                        await self._store.outbound.update(
                            row.id,
                            fence=fence,
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
                except ClaimLostError:
                    raise
                except Exception as exc:  # a bug in an adapter must not wedge the conversation
                    log.exception("adapter %r crashed sending reply %d", adapter.name, row.id)
                    self._metrics.send_failures.labels(adapter.name, "other").inc()
                    await self._fail(row, attempts, exc, fence)
                    return True
                await self.mark_delivered(
                    row.id, sent, fence=fence, meta=without_file_data(row.meta)
                )
                log.debug("reply %d sent", row.id, extra={"body": row.text})
                return True
        except ClaimLostError as exc:
            log.warning("reply %d: %s; the new holder sends it", row.id, exc)
            return False

    async def mark_delivered(
        self,
        outbound_id: int,
        sent: SentMessage,
        *,
        fence: tuple[str, int] | None = None,
        text: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Record that a reply reached its channel (only under ``fence``, if given), with
        the ``text`` it shows when that changed (a live reply) and its new ``meta`` (its
        files' bytes dropped); tried until it lands, since a reply not marked would be
        sent again."""
        shows: dict[str, Any] = {} if text is None else {"text": text}
        if meta is not None:
            shows["meta"] = meta
        await until_landed(
            lambda: self._store.outbound.update(
                outbound_id,
                fence=fence,
                status="delivered",
                external_id=sent.external_id,
                error=None,
                next_attempt_at=None,
                **shows,
            ),
            "mark a reply delivered",
        )
        self._metrics.messages_out.labels(sent.conversation.channel).inc()

    async def _fail(
        self, row: StoredMessage, attempts: int, exc: BaseException, fence: tuple[str, int]
    ) -> None:
        log.error(
            "reply %d to %s failed for good after %d attempt(s): %s",
            row.id,
            row.conversation.key,
            attempts,
            exc,
        )
        await self._store.outbound.update(
            row.id, fence=fence, status="failed", error=str(exc)[:2000]
        )
        self._metrics.failures.labels("send").inc()

    def _delay(self, exc: ServiceError | StoreUnavailableError, attempts: int) -> float:
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
        if not self._closed:  # kept in _tasks: close() waits for it
            _ = self._own(self._flush_quietly(conversation_id))

    def _own(self, flush: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``flush`` in a task of the outbox's own, which :meth:`close` waits for."""
        task = asyncio.create_task(flush)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
