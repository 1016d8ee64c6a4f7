"""The store's value types: plain snapshots of stored rows (no ORM object leaks out)
and what callers hand in (claims, fences, drafts, model calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from botkit.messages import ConversationRef

__all__ = [
    "EARLIER_OUT",
    "HISTORY_IN",
    "NANOS_PER_DOLLAR",
    "UNDELIVERED_OUT",
    "UNFINISHED_IN",
    "Accepted",
    "CallRow",
    "Claim",
    "ContextPlan",
    "ContextRead",
    "Fence",
    "Finished",
    "OutboundDraft",
    "OutboundSettle",
    "Resumable",
    "StoredMessage",
    "ToolCallRecord",
    "UsageRow",
    "dollars",
    "nanos",
]


# message statuses, as the queries group them
UNFINISHED_IN = ("pending", "processing")
UNDELIVERED_OUT = ("pending", "sending")
# replies that reached (or may have reached) the channel for a message still being
# answered: a new answer to that message takes their place instead of adding to them
EARLIER_OUT = ("pending", "sending", "delivered", "interrupted")
# inbound turns the model sees: answered, being answered, or kept as passive context
# (a pending one is the message being answered, or one of its coalesced burst: later
# pending messages are excluded by the ``before_id`` every history read gives)
HISTORY_IN = ("pending", "processing", "done", "context")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored message, inbound or outbound."""

    id: int
    conversation_id: int
    conversation: ConversationRef
    direction: str
    text: str
    status: str
    external_id: str | None = None
    sender_id: str | None = None
    sender_name: str | None = None
    markup: str = "plain"
    reply_to_id: int | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class ContextPlan:
    """Turns to read in the transaction that accepts a message (SQLite), for the answer
    that follows: those of ``conversation_id`` after ``after_id``, the newest ``limit``.

    Attributes:
        conversation_id: the conversation the message is expected in (read only if so).
        after_id: the newest turn the history cache already holds settled.
        limit: the history limit the answer will use.
    """

    conversation_id: int
    after_id: int
    limit: int


class HistoryTurn(NamedTuple):
    """A history turn as an answer's context reads it: only what a prompt is built from
    and whether the turn can still change (its status).

    A tuple, not a snapshot: every answer reads its newest turns, and neither the
    conversation's columns, the JSON ones nor the timestamps are needed for them.
    """

    id: int
    direction: str
    status: str
    sender_id: str | None
    sender_name: str | None
    text: str


@dataclass(frozen=True, slots=True)
class ContextRead:
    """A conversation's history as one read found it (``HistoryStore.recent_turns``).

    Attributes:
        start: turns at or below this id are not history (``/reset``).
        summary: the running summary and the newest id it covers, if there is one.
        turns: the history turns read, oldest first.
        changed_at: when the conversation last changed other than by a new turn (a
            ``/reset``, a held message released into it).
    """

    start: int
    summary: tuple[str, int] | None
    turns: list[HistoryTurn]
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Spend and tokens for one group of a usage report."""

    day: str
    model: str
    channel: str
    user: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_nanos: int
    unpriced_calls: int
    estimated_calls: int = 0  # the server sent no usage: botkit counted the tokens


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A tool call the model made while answering an inbound message, and its result.

    Attributes:
        message_id: the inbound message answered.
        round: the answer's round of calls it belongs to, from 0.
        call_id: the model's id of the call.
        name: the tool's name.
        arguments: the arguments as the model wrote them (JSON text).
        said: what the model said along with the round's calls.
        status: ``"running"`` (started and never finished when read back: cut short by
            a stop or a crash, it may or may not have taken effect), ``"done"``,
            ``"failed"`` (the tool raised) or ``"skipped"`` (it declined).
        result: what the model was told; ``None`` while running.
        id: the row's id; 0 before it is stored.
    """

    message_id: int
    round: int
    call_id: str
    name: str
    arguments: str
    said: str | None = None
    status: str = "running"
    result: str | None = None
    id: int = 0


@dataclass(frozen=True, slots=True)
class Accepted:
    """What :meth:`Inbox.accept` did with a message.

    Attributes:
        message_id: the store's id of the message (of the first copy, for a duplicate).
        duplicate: true when the same (channel, external id) had been accepted before;
            the adapter acknowledges it all the same, and it is not processed again.
    """

    message_id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """A process's claim on work: who, and until when unless renewed."""

    owner: str
    until: datetime


Fence = dict[int, int]
"""Fencing tokens of claimed rows, by row id (see ``ClaimStore.claim``)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """What ``InboundStore.finish`` stored: reply ids, and whether they are claimed."""

    out_ids: list[int]
    claimed: bool


@dataclass(frozen=True, slots=True)
class Resumable:
    """An unfinished inbound message as the dispatcher's sweep sees it."""

    id: int
    conversation_id: int
    free: bool  # no live process holds it
    due: datetime | None  # not to be tried before this (a postponed message)
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundDraft:
    """A reply to queue in the outbox."""

    conversation_id: int
    channel: str
    text: str
    markup: str = "markdown"
    reply_to_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"


OutboundSettle = dict[str, Any]
"""A fenced change of an outbox entry, made with a message's finish (``settle_outbound``)."""


@dataclass(frozen=True, slots=True)
class CallRow:
    """One model call as stored (see ``ModelCallRow``)."""

    purpose: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_nanos: int | None
    latency_ms: float
    ok: bool
    error: str | None
    attempt: int
    message_id: int | None = None
    conversation_id: int | None = None
    channel: str | None = None
    user_id: str | None = None
    # the tokens are botkit's count: the server sent no usage
    usage_estimated: bool = False
    # the spend reservation this call settles (dropped when the call is stored)
    reservation_id: int | None = None


NANOS_PER_DOLLAR = 1_000_000_000


def dollars(nanos: int | None) -> Decimal | None:
    """Nano-dollars as a Decimal dollar amount."""
    return None if nanos is None else Decimal(nanos) / NANOS_PER_DOLLAR


def nanos(cost: Decimal | None) -> int | None:
    """A Decimal dollar amount as whole nano-dollars (rounded half up)."""
    if cost is None:
        return None
    return int((cost * NANOS_PER_DOLLAR).to_integral_value(rounding="ROUND_HALF_UP"))
