"""A live reply: one channel message that shows an answer while it is written.

The outbox opens it (``Outbox.live``) and owns it: the message is posted once and then
edited in place; the id of the posted message and the text it shows are stored each
time the channel is told something (as often as the channel's edit pace allows, never
per token), so after a crash the new answer edits the same message. ``streaming.py``
only decides when to show what.

Where the channel streams natively (``Capabilities.native_streams``), the answer is shown
with the adapter's stream instead, falling back to posting and editing wherever the
adapter declines or fails to start one:

- a stream that is a message (Slack's ``chat.startStream``) is recorded as soon as it
  starts, like a posted message, marked ``stream`` in its meta: after a crash the new
  answer ends that stream (``Adapter.close_stream``) and edits the same message;
- a stream that is no message (a Telegram draft) records nothing: the finished answer
  is queued and sent by the outbox like any reply, once; after a crash the new answer
  streams again under the same draft id and is sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from botkit._faults import fault_point
from botkit.adapter import Adapter, NativeStream
from botkit.claims import sending_under
from botkit.exceptions import ClaimLostError, RateLimitError, ServiceError
from botkit.landing import until_landed
from botkit.messages import Reply, SentMessage
from botkit.store import StoredMessage, settle_outbound
from botkit.text import split_text
from botkit.turn import Turn

if TYPE_CHECKING:
    from botkit.outbox import Outbox

__all__ = ["LiveReply", "delivery_id", "edit_with_retry", "retrying", "shown_by"]

log = logging.getLogger(__name__)


def delivery_id(outbound_id: int) -> str:
    """The stable id adapters get for one outbox entry."""
    return f"botkit-{outbound_id}"


class LiveReply:
    """One growing message of an answer; see :meth:`botkit.outbox.Outbox.live`.

    Attributes:
        row_id: its outbox entry (``None`` while it only collects text).
        shown: the text the channel shows now (``None``: nothing posted yet).
    """

    def __init__(
        self,
        outbox: Outbox,
        turn: Turn,
        adapter: Adapter,
        template: Reply,
        *,
        row_id: int | None,
        token: int,
        sent: SentMessage | None,
        taken_at: float = 0.0,
        dropped: bool = False,
    ) -> None:
        self._outbox = outbox
        self._turn = turn
        self._adapter = adapter
        self._template = template
        self.row_id = row_id
        self._token = token
        self._taken_at = taken_at  # when its claim was taken (time.monotonic())
        self._sent = sent
        self.shown: str | None = sent.text if sent is not None else None
        self._stream: NativeStream | None = None  # the adapter's own stream, once started
        # a native stream is tried once, for a reply that has shown nothing yet
        self._native = adapter.capabilities.native_streams and sent is None
        # another process delivers the reply this answer would replace: nothing is shown
        # and nothing queued
        self._dropped = dropped

    @classmethod
    async def open(
        cls, outbox: Outbox, turn: Turn, adapter: Adapter, template: Reply, *, queue_only: bool
    ) -> LiveReply:
        """Open a live reply: in the place of the turn's next earlier reply, if an earlier
        try posted one; else as a new outbox entry, ``streaming`` and claimed. With
        ``queue_only`` nothing is shown: the text is queued when finished."""
        if queue_only:
            return cls(outbox, turn, adapter, template, row_id=None, token=0, sent=None)
        store, claims = outbox.store, outbox.claims
        taken_at = time.monotonic()
        earlier = turn.take_earlier()
        if earlier is not None:
            taken = await outbox.claim_earlier(earlier, status="streaming")
            if taken is None:
                # another live process kept delivering it: this answer is not shown
                log.warning(
                    "reply %d is being delivered by another process; this answer is not"
                    " sent as well",
                    earlier.id,
                )
                return cls(
                    outbox, turn, adapter, template, row_id=None, token=0, sent=None,
                    dropped=True,
                )  # fmt: skip
            token, taken_at = taken
            sent = await shown_by(adapter, earlier)
            return cls(
                outbox, turn, adapter, template, row_id=earlier.id, token=token,
                sent=sent, taken_at=taken_at,
            )  # fmt: skip
        draft = dataclasses.replace(turn.draft(template), text="", status="streaming")
        row_id = await store.outbound.add(draft, claim=claims.claim(), held=outbox.held(turn))
        return cls(
            outbox, turn, adapter, template, row_id=row_id, token=1, sent=None, taken_at=taken_at
        )

    @property
    def interval(self) -> float:
        """The least seconds between two things shown: the channel's pace for its own
        streams while one is shown, else its edit pace."""
        capabilities = self._adapter.capabilities
        return capabilities.stream_interval if self._stream else capabilities.edit_interval

    @property
    def _fence(self) -> tuple[str, int]:
        return (self._outbox.claims.owner, self._token)

    def _check_claims(self) -> None:
        if not self._outbox.claims.live(self._taken_at):
            raise ClaimLostError("this process's claims may have lapsed; the answer stops here")

    async def show(self, text: str) -> None:
        """Show ``text`` now: post it the first time, edit the message after that."""
        if self.row_id is None or text == self.shown:
            return
        self._check_claims()
        if self._stream is not None:
            await self._append(text)
            return
        if self._native and await self._start(text):
            return
        if self._sent is None:
            with sending_under(self._outbox.claims, self._taken_at):
                self._sent = await self._adapter.send(
                    self._turn.message.conversation,
                    dataclasses.replace(self._template, text=text),
                    delivery_id=delivery_id(self.row_id),
                )
            self.shown = text
            await self._record_posted(text)
            return
        with sending_under(self._outbox.claims, self._taken_at):
            edited = await edit_with_retry(
                self._adapter, self._sent, text, failed=self._outbox.send_failed(self._adapter)
            )
        if edited is not None:
            # not stored: after a crash the new answer edits this message whatever it
            # shows, so an edit costs no write; the whole text is stored when finished
            self._sent, self.shown = edited, text

    async def _start(self, text: str) -> bool:
        """Show ``text`` with the adapter's own stream; whether one started."""
        assert self.row_id is not None
        self._native = False
        try:
            with sending_under(self._outbox.claims, self._taken_at):
                stream = await self._adapter.start_stream(
                    self._turn.message,
                    dataclasses.replace(self._template, text=text),
                    delivery_id=delivery_id(self.row_id),
                )
        except ServiceError as exc:
            log.info("reply %d: no native stream (%s); posting and editing", self.row_id, exc)
            return False
        if stream is None:
            return False
        self._stream, self.shown = stream, text
        if stream.message is not None:  # the stream is a message: recorded like a post
            self._sent = stream.message
            await self._record_posted(text)
        return True

    async def _append(self, text: str) -> None:
        assert self._stream is not None
        try:
            with sending_under(self._outbox.claims, self._taken_at):
                stream = await self._adapter.append_stream(self._stream, text)
        except ServiceError as exc:  # not stored, so not lost: the next step shows it all
            log.info("reply %d: a stream step failed (%s)", self.row_id, exc)
            return
        self._stream, self.shown = stream, text
        if stream.message is not None:
            self._sent = stream.message

    async def _record_posted(self, text: str) -> None:
        """Store the posted message's id at once (tried until it lands): from here on a
        crash or an outage ends in an edit of this message, not in a second one."""
        assert self.row_id is not None
        assert self._sent is not None
        store = self._outbox.store
        row_id, fence, external_id, meta = (
            self.row_id, self._fence, self._sent.external_id, self._meta()
        )  # fmt: skip
        await until_landed(
            lambda: store.outbound.update(
                row_id, fence=fence, text=text, external_id=external_id, meta=meta
            ),
            "record a posted message",
        )
        fault_point("live-shown")

    async def finish(self, text: str) -> None:
        """The answer is complete: the message shows all of it (or its first part, the
        rest following as replies of their own), and is marked delivered."""
        outbox, store = self._outbox, self._outbox.store
        conversation_id = self._turn.conversation_id
        if self.row_id is None:  # collecting only: queued behind what waits
            if text.strip() and not self._dropped:
                await store.outbound.add(
                    self._turn.draft(dataclasses.replace(self._template, text=text)),
                    held=outbox.held(self._turn),
                )
            return
        pieces = split_text(text, self._adapter.capabilities.max_length) if text.strip() else []
        if not pieces:
            await store.outbound.update(
                self.row_id, fence=self._fence, status="failed", error="the reply was empty"
            )
            return
        # anything left for the outbox to send: the message itself, when nothing was shown,
        # or the pieces past the channel's limit (replies queued meanwhile by others wait
        # on the conversation's lock, and their own flush sends them)
        queued = self._sent is None or len(pieces) > 1
        if self._sent is None:  # nothing shown yet: the outbox sends it, with retries
            await store.outbound.update(
                self.row_id,
                fence=self._fence,
                text=pieces[0],
                status="pending",
                claimed_by=None,
                claimed_until=None,
            )
        else:
            stream, sent = self._stream, self._sent
            if stream is not None or pieces[0] != self.shown:
                self._check_claims()
                with sending_under(self._outbox.claims, self._taken_at):
                    if stream is not None:  # a stream ends showing the whole first piece
                        edited = await retrying(
                            lambda: self._adapter.stop_stream(stream, pieces[0]),
                            f"end the stream of message {sent.external_id}",
                            failed=self._outbox.send_failed(self._adapter),
                        )
                    else:
                        edited = await edit_with_retry(
                            self._adapter,
                            sent,
                            pieces[0],
                            failed=self._outbox.send_failed(self._adapter),
                        )
                if edited is None:
                    # the message shows only part of the answer: it stays recorded as
                    # such, and the whole answer is sent as a reply of its own
                    await store.outbound.update(
                        self.row_id,
                        fence=self._fence,
                        status="failed",
                        text=self.shown or "",
                        error="the last edit failed",
                    )
                    await store.outbound.add(
                        self._turn.draft(dataclasses.replace(self._template, text=text)),
                        held=outbox.held(self._turn),
                    )
                    await outbox.flush_locked(conversation_id)
                    return
                self._sent, self.shown = edited, pieces[0]
            await self._delivered(pieces[0])
        for rest in pieces[1:]:  # past one message: through the outbox, with retries
            await store.outbound.add(
                self._turn.draft(dataclasses.replace(self._template, text=rest)),
                held=outbox.held(self._turn),
            )
        if queued:
            await outbox.flush_locked(conversation_id)

    async def fail(self, error: BaseException) -> None:
        """The answer broke off. What the message shows stays recorded as
        ``interrupted``, and the turn's next reply (an apology, or the answer of a later
        try) takes its place; a reply that showed nothing is marked failed."""
        if self.row_id is None:
            return
        store = self._outbox.store
        with contextlib.suppress(Exception):  # a stop or a lost database: the sweep closes it
            if self._sent is None:
                await store.outbound.update(
                    self.row_id,
                    fence=self._fence,
                    status="failed",
                    error=f"stream broke off: {error}"[:2000],
                )
                return
            await store.outbound.update(
                self.row_id,
                fence=self._fence,
                status="interrupted",
                error=f"stream broke off: {error}"[:2000],
            )
            [row] = await store.history.messages([self.row_id])
            self._turn.earlier.insert(0, row)

    async def _delivered(self, text: str) -> None:
        """Mark the message delivered, showing ``text``: with the turn's finish, in its
        write, when one follows (a streamed answer then costs one write more than a
        plain one); else now."""
        assert self.row_id is not None
        assert self._sent is not None
        settles = self._turn.settles
        if settles is None:
            await self._outbox.mark_delivered(
                self.row_id, self._sent, fence=self._fence, text=text
            )
            return
        settles.append(
            settle_outbound(
                self.row_id,
                self._fence,
                status="delivered",
                external_id=self._sent.external_id,
                error=None,
                next_attempt_at=None,
                text=text,
            )
        )
        # kept from the sweep that closes streams nobody writes, until the finish lands
        self._outbox.settling(self.row_id)

    def _meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "reply_to": self._template.reply_to,
            "metadata": dict(self._template.metadata),
        }
        if self._sent is not None and self._sent.parts:
            meta["parts"] = list(self._sent.parts)
        if self._stream is not None:
            meta["stream"] = True  # a native stream: ended before it is edited again
        return meta


async def shown_by(adapter: Adapter, row: StoredMessage) -> SentMessage | None:
    """The channel message an earlier reply posted, if it posted one: as recorded, or,
    when its process stopped between posting it and recording that, as the adapter finds
    it by its delivery id (``Adapter.find_sent``)."""
    if row.status == "pending":
        return None  # never handed to the channel
    if row.external_id is not None:
        parts = tuple(row.meta.get("parts") or ())
        sent = SentMessage(row.conversation, row.external_id, row.text, parts)
        if row.meta.get("stream") and row.status in ("streaming", "interrupted"):
            # a native stream whose writer stopped may still be open: end it first, so
            # that the message can be edited
            try:
                await adapter.close_stream(sent)
            except ServiceError as exc:
                log.warning("could not end the stream of reply %d: %s", row.id, exc)
        return sent
    try:
        return await adapter.find_sent(row.conversation, delivery_id(row.id))
    except ServiceError as exc:
        log.warning("could not look for reply %d on the channel: %s", row.id, exc)
        return None


async def edit_with_retry(
    adapter: Adapter,
    sent: SentMessage,
    text: str,
    *,
    attempts: int = 5,
    failed: Callable[[ServiceError], None] | None = None,
) -> SentMessage | None:
    """Edit a posted message, waiting out rate limits; ``None`` if it never went through."""
    return await retrying(
        lambda: adapter.edit(sent, text),
        f"edit message {sent.external_id}",
        attempts=attempts,
        failed=failed,
    )


async def retrying(
    call: Callable[[], Awaitable[SentMessage]],
    what: str,
    *,
    attempts: int = 5,
    failed: Callable[[ServiceError], None] | None = None,
) -> SentMessage | None:
    """Make one change to a posted message (``call``), waiting out rate limits and
    retrying what may pass later; ``None`` if it never went through. ``failed`` is told
    of every try the channel refused (the send-failure metric counts them)."""
    for attempt in range(attempts):
        try:
            return await call()
        except ServiceError as exc:
            if failed is not None:
                failed(exc)
            if isinstance(exc, RateLimitError):
                await asyncio.sleep(min(exc.retry_after or 1.0, 30.0))
                continue
            if not exc.retryable or attempt == attempts - 1:
                log.warning("could not %s: %s", what, exc)
                return None
            await asyncio.sleep(2**attempt)
    return None
