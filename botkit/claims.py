"""This process's claims on work: its name, its lease, and the clock claims are written in.

Several ``botkit run`` processes may share one PostgreSQL database. A process claims
each message and reply it works on for one lease; the claim carries a fencing token
(see ``Store.claim``), and every state change it makes is conditional on still holding
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
from datetime import timedelta

from botkit.exceptions import ClaimLostError
from botkit.store import Claim
from botkit.store.models import utcnow

__all__ = ["Claims", "ensure_claims_live", "sending_under"]

# the claims behind the send or edit under way in this task (set by the outbox)
_SENDING: ContextVar[Claims | None] = ContextVar("botkit_sending", default=None)

_LIVE_SHARE = 0.8  # of a lease after the last renewal: the margin covers latency and drift


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
        self._renewed_at = time.monotonic()

    def claim(self) -> Claim:
        """A claim by this process, valid for one lease from now, in database time."""
        return Claim(self.owner, utcnow() + self.clock_offset + timedelta(seconds=self.lease))

    def renewal_sent(self, at: float) -> None:
        """A renewal of every claim, sent at ``at`` (``time.monotonic()``), succeeded."""
        self._renewed_at = max(self._renewed_at, at)

    def live(self) -> bool:
        """Whether every claim this process holds is surely still live: no send or edit
        starts on a claim that may have lapsed."""
        return time.monotonic() < self._renewed_at + self.lease * _LIVE_SHARE


@contextlib.contextmanager
def sending_under(claims: Claims) -> Iterator[None]:
    """Mark the sends and edits made inside as made under ``claims`` (the outbox, around
    every call of an adapter's ``send`` and ``edit``)."""
    token = _SENDING.set(claims)
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
    claims = _SENDING.get()
    if claims is not None and not claims.live():
        raise ClaimLostError("this process's claims may have lapsed; the request was not sent")
