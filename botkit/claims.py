"""This process's claims on work: its name, its lease, and the clock claims are written in.

Several ``botkit run`` processes may share one PostgreSQL database. A process claims
each message and reply it works on for one lease; the claim carries a fencing token
(see ``ClaimStore.claim``), and every state change it makes is conditional on still holding
it. Expiry is judged by the database's clock, so claims are written in it; whether this
process may still *start* a send or an edit is judged by its own monotonic clock from
the last renewal it sent, with a margin, so a process that stalled past its lease does
nothing more once it wakes.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp

from botkit.exceptions import ClaimLostError
from botkit.store import Claim
from botkit.store.models import utcnow

__all__ = ["Claims", "claim_lost_cause", "claims_trace", "ensure_claims_live", "sending_under"]

# the claim behind the send or edit under way in this task, and when it was taken (set
# by the outbox)
_SENDING: ContextVar[tuple[Claims, float] | None] = ContextVar("botkit_sending", default=None)

_LIVE_SHARE = 0.8  # of a lease after the last renewal: the margin covers latency and drift
# a reading of the database's clock is trusted over a better one (a shorter round trip)
# for this long at most: clocks drift, slowly
CLOCK_READING_KEPT = 60.0


class Claims:
    """Who this process is on the work it claims, and whether its claims are live.

    Args:
        lease: seconds a claim lasts unrenewed.
        owner: this process's name (a fresh unique one by default).
    """

    def __init__(self, lease: float = 30.0, owner: str | None = None) -> None:
        self.lease = lease
        self.owner = owner or f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"
        # the database's clock minus this process's (PostgreSQL's now() is the judge)
        self.clock_offset = timedelta(0)
        self._clock_round_trip: float | None = None  # of the reading clock_offset is from
        self._clock_read_at = 0.0
        self._renewed_at = time.monotonic()
        # when this process's claims lapse unless renewed (database time): all at once
        self._until = self._a_lease_from_now()
        # claims taken before this moment may have lapsed and been taken over while the
        # process could not renew them (a pause, a lost database): they stay lost
        self._valid_since = float("-inf")

    def clock_read(self, database_now: datetime, before: datetime, after: datetime) -> None:
        """A reading of the database's clock, ``database_now``, between ``before`` and
        ``after`` (this process's clock).

        The offset is the reading against the middle of the round trip, so it is off by
        up to half the round trip; a round trip slowed by a busy loop or a wait for a
        pooled connection would move every claim's expiry by that much, earlier than this
        process reckons its claims live. So the reading with the shortest round trip of
        the last :data:`CLOCK_READING_KEPT` seconds is the one kept.
        """
        round_trip = (after - before).total_seconds()
        now = time.monotonic()
        kept = self._clock_round_trip
        if kept is None or round_trip <= kept or now - self._clock_read_at > CLOCK_READING_KEPT:
            self.clock_offset = database_now - (before + (after - before) / 2)
            self._clock_round_trip = round_trip
            self._clock_read_at = now

    def _a_lease_from_now(self) -> datetime:
        return utcnow() + self.clock_offset + timedelta(seconds=self.lease)

    def claim(self) -> Claim:
        """A claim by this process, in database time.

        Every claim of a process lapses at the same moment, the one its last renewal
        set: a message and the replies to it never outlive each other's claims, so the
        process that takes a message over finds the replies an earlier try posted free
        to edit as well (none still held by the stalled or dead process).
        """
        return Claim(self.owner, self._until)

    def renewal(self) -> Claim:
        """The claim a renewal about to be sent extends every claim to (a lease from now);
        claims taken from now on lapse with them."""
        self._until = self._a_lease_from_now()
        return Claim(self.owner, self._until)

    def renewal_sent(self, at: float) -> None:
        """A renewal of every claim (to :meth:`renewal`), sent at ``at``
        (``time.monotonic()``, taken before :meth:`renewal` was called), succeeded.

        After a gap longer than a claim is surely live (the process was paused, or the
        database away), the claims taken before it may have been taken over: the renewal
        extends only those still held, so none of them counts as live any more; the work
        is found again by the next sweep, under a fresh claim.
        """
        if at - self._renewed_at > self.lease * _LIVE_SHARE:
            self._valid_since = at
        self._renewed_at = max(self._renewed_at, at)

    def live(self, taken_at: float) -> bool:
        """Whether a claim taken at ``taken_at`` (``time.monotonic()`` before its statement
        was sent) is surely still held: no send or edit starts on one that may have
        lapsed."""
        if taken_at < self._valid_since:
            return False
        # every claim lapses a lease after the last renewal sent at the latest
        return time.monotonic() < self._renewed_at + self.lease * _LIVE_SHARE


@contextlib.contextmanager
def sending_under(claims: Claims, taken_at: float) -> Iterator[None]:
    """Mark the sends and edits made inside as made under a claim of ``claims`` taken at
    ``taken_at`` (the outbox, around every call of an adapter's ``send`` and ``edit``)."""
    token = _SENDING.set((claims, taken_at))
    try:
        yield
    finally:
        _SENDING.reset(token)


def ensure_claims_live() -> None:
    """For adapters, right before a request goes on the wire (after any pacing or
    rate-limit wait): refuse it when the claims it is sent under may have lapsed, so a
    process frozen mid-send (a long pause, SIGSTOP) sends nothing once it wakes; another
    process holds that reply by then. Does nothing outside a send.

    Raises:
        ClaimLostError: the claims may have lapsed; nothing was sent by this request.
    """
    sending = _SENDING.get()
    if sending is not None and not sending[0].live(sending[1]):
        raise ClaimLostError("this process's claims may have lapsed; the request was not sent")


def claim_lost_cause(exc: BaseException) -> ClaimLostError | None:
    """The :class:`ClaimLostError` behind a failed request (raised by :func:`claims_trace`
    and wrapped by the HTTP client or the channel's library on its way out), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClaimLostError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def claims_trace() -> aiohttp.TraceConfig:
    """For adapters that send with aiohttp: a trace that calls :func:`ensure_claims_live`
    once the request's headers are ready and again as its first bytes are about to be
    written, after every wait of the client (a pooled connection, DNS, a connect), with
    nothing left that could suspend in between. A process frozen before that moment
    writes nothing once it wakes; checked any earlier, a freeze between the check and
    the write would still send.

    Pass it as ``aiohttp.ClientSession(trace_configs=[claims_trace()])``. A refused
    request raises the :class:`ClaimLostError` itself, or an aiohttp error caused by it
    (:func:`claim_lost_cause` finds it).
    """

    async def check(_session: aiohttp.ClientSession, _ctx: SimpleNamespace, _params: Any) -> None:
        ensure_claims_live()  # no await before it returns: the write follows at once

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(check)  # a request without a body
    trace.on_request_chunk_sent.append(check)  # the first chunk carries the headers
    return trace
