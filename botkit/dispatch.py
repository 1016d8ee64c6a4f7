"""The dispatcher: runs accepted messages through the pipeline.

Messages of one conversation are handled strictly in order, one at a time; different
conversations run concurrently, at most ``max_in_flight`` at once. With the ``coalesce``
burst policy, messages that arrive while a reply is being generated are answered
together, once. After a crash, ``resume()`` picks up everything accepted but not finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from typing import Literal

from botkit.context import Context, draft_of, reply_of
from botkit.exceptions import QuotaExceededError
from botkit.messages import Attachment, Message, Sender
from botkit.routing import Pipeline
from botkit.runtime import Runtime
from botkit.store import OutboundDraft, StoredMessage
from botkit.store.models import utcnow

__all__ = ["APOLOGY", "Dispatcher"]

log = logging.getLogger(__name__)

APOLOGY = "Sorry, I couldn't answer that just now. Please try again in a moment."
BurstPolicy = Literal["queue", "coalesce"]
UNFINISHED = ("pending", "processing")


class Dispatcher:
    """Per-conversation ordering, cross-conversation concurrency, bounded in-flight work."""

    def __init__(
        self,
        runtime: Runtime,
        pipeline: Pipeline,
        *,
        max_in_flight: int = 32,
        burst: BurstPolicy = "queue",
    ) -> None:
        self._runtime = runtime
        self._pipeline = pipeline
        self._burst = burst
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queues: dict[int, deque[int]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._known: set[int] = set()
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._fresh: dict[int, tuple[Message, float]] = {}
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
        """Queue every unfinished message no live process holds; returns how many.

        Called at start (crash recovery) and then periodically, so a message whose
        process died is taken over once that process's claim lapses.
        """
        rows = await self._runtime.store.unfinished_inbound(now=utcnow())
        for row in rows:
            self.submit(row.id, row.conversation_id)
        if rows:
            log.info("resuming %d message(s) accepted before the last stop", len(rows))
        return len(rows)

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
        for queue in self._queues.values():
            self._finish(list(queue))  # not started: stays "pending" in the store
            queue.clear()
        workers = list(self._workers.values())
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
                        await self._process(conversation_id, batch)
                    except Exception:
                        # a store failure (say): hand the work back so a sweep retries it
                        log.exception("messages %s could not be handled; released", batch)
                        self._runtime.metrics.failures.labels("dispatch").inc()
                        with contextlib.suppress(Exception):
                            await self._runtime.store.release(batch, self._runtime.owner)
                    finally:
                        self._finish(batch)
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

    async def _process(self, conversation_id: int, batch: list[int]) -> None:
        store = self._runtime.store
        now = time.monotonic()
        fresh = [self._fresh.get(i) for i in batch]
        if all(f is not None and f[1] > now for f in fresh):
            # accepted by this process moments ago: our claim on them is live
            messages = [f[0] for f in fresh if f is not None]
        else:
            # resumed work: another live process may hold some of it; take what is free
            ids = await store.claim(
                batch, self._runtime.claim(), status="processing", from_statuses=UNFINISHED
            )
            if not ids:
                return
            messages = [_message_of([row]) for row in await store.messages(ids)]
        # group chatter an adapter passes on as context: kept for history, not answered
        chatter = [m.id for m in messages if m.metadata.get("addressed") is False]
        if chatter:
            await store.set_inbound_status([i for i in chatter if i is not None], "context")
            messages = [m for m in messages if m.metadata.get("addressed") is not False]
            if not messages:
                return
        ids = [m.id for m in messages if m.id is not None]
        message = _combine(messages)
        error: str | None = None
        ctx = Context(self._runtime, message, conversation_id)
        ctx.defer_calls()
        try:
            result = await self._pipeline.handle(message, ctx)
        except asyncio.CancelledError:
            # stays unfinished: answered after the next start; the calls made are paid for
            calls = ctx.deferred_calls or []
            with contextlib.suppress(Exception):
                await asyncio.shield(store.record_calls(calls))
            raise
        except Exception as exc:
            log.exception("handling message %s failed", ids)
            self._runtime.metrics.failures.labels("handle").inc()
            text = APOLOGY
            if isinstance(exc, QuotaExceededError):
                text = f"Sorry, I can't answer right now: {exc.reason}"
            draft = draft_of(conversation_id, message.channel, reply_of(text, message), message)
            status, drafts, error = "failed", [_plain(draft)], f"{type(exc).__name__}: {exc}"
        else:
            drafts = []
            if result is not None:
                reply = reply_of(result, message)
                if reply.text.strip():
                    drafts.append(draft_of(conversation_id, message.channel, reply, message))
            status, error = ("done" if drafts or ctx.replied else "skipped"), None
        calls = ctx.deferred_calls or []
        try:
            finished = await store.finish_inbound(
                ids,
                status,
                drafts,
                error=error[:2000] if error else None,
                claim=self._runtime.claim(),
                calls=calls,
            )
        except Exception:
            with contextlib.suppress(Exception):  # the calls were paid for all the same
                await store.record_calls(calls)
            raise
        outbox = self._runtime.outbox
        if finished.claimed:  # nothing else waits: send these now, already claimed
            await outbox.send_claimed(
                conversation_id,
                [_outgoing(i, d, message) for i, d in zip(finished.out_ids, drafts, strict=True)],
            )
        else:
            await outbox.flush(conversation_id)


def _plain(draft: OutboundDraft) -> OutboundDraft:
    return OutboundDraft(
        draft.conversation_id, draft.channel, draft.text, "plain", draft.reply_to_id, draft.meta
    )


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


def _message_of(rows: list[StoredMessage]) -> Message:
    """The message handlers see; a coalesced burst reads as one message."""
    last = rows[-1]
    return Message(
        conversation=last.conversation,
        sender=Sender(id=last.sender_id or "", name=last.sender_name),
        text="\n".join(r.text for r in rows if r.text),
        external_id=last.external_id or "",
        attachments=tuple(
            Attachment(
                name=str(a.get("name", "")),
                content_type=str(a.get("content_type", "application/octet-stream")),
                size=a.get("size"),
                url=a.get("url"),
            )
            for r in rows
            for a in r.attachments
        ),
        metadata={**last.meta, "coalesced": len(rows)} if len(rows) > 1 else last.meta,
        received_at=last.created_at or utcnow(),
        id=last.id,
    )
