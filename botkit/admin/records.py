"""What the operations page's queries return: plain frozen rows, no ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "CallLine",
    "ConversationLine",
    "ConversationPage",
    "ConversationView",
    "LeaseLine",
    "MessageLine",
    "WorkLine",
]


@dataclass(frozen=True, slots=True)
class ConversationLine:
    """One conversation in the list, with its activity and spend."""

    id: int
    channel: str
    chat_id: str
    thread_id: str | None
    created_at: datetime
    messages: int = 0
    last_at: datetime | None = None
    last_sender: str | None = None
    last_text: str = ""
    calls: int = 0
    tokens: int = 0
    cost_nanos: int = 0


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of the conversation list; ``next_before``: the next page's key, if any."""

    lines: list[ConversationLine]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class CallLine:
    """One model call: tokens (``estimated``: botkit's own count) and cost (``None``:
    the model has no price)."""

    id: int
    message_id: int | None
    purpose: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_nanos: int | None
    latency_ms: float
    ok: bool
    error: str | None
    estimated: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MessageLine:
    """One stored message as the page shows it."""

    id: int
    conversation_id: int
    channel: str
    direction: str
    status: str
    sender_id: str | None
    sender_name: str | None
    text: str
    error: str | None
    attempts: int
    reply_to_id: int | None
    meta: dict[str, Any]
    claimed_by: str | None
    claimed_until: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationView:
    """One conversation: a page of its messages (oldest first) with their model calls,
    and its totals over every call."""

    line: ConversationLine
    messages: list[MessageLine]
    calls: dict[int, list[CallLine]]  # by message id
    unattached: list[CallLine]  # calls of the conversation tied to no message shown
    older_before: int | None  # the key of the page of older messages, if any
    estimated_calls: int
    unpriced_calls: int


@dataclass(frozen=True, slots=True)
class WorkLine:
    """Unfinished work of one kind held by one process (``owner`` ``None``: nobody)."""

    owner: str | None
    direction: str
    status: str
    count: int
    earliest_until: datetime | None
    latest_until: datetime | None
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class LeaseLine:
    """A singleton lease (a poller, a mailbox watcher, the scheduler) and its holder."""

    name: str
    holder: str | None
    until: datetime | None
