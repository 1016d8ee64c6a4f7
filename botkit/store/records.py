"""Plain snapshots of stored rows, handed out of the store so no ORM object leaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botkit.messages import ConversationRef

__all__ = ["ContextRead", "StoredMessage", "ToolCallRecord", "UsageRow"]


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
class ContextRead:
    """A conversation's history as one read found it (``Store.recent_turns``).

    Attributes:
        start: turns at or below this id are not history (``/reset``).
        summary: the running summary and the newest id it covers, if there is one.
        turns: the history turns read, oldest first.
        changed_at: when the conversation last changed other than by a new turn (a
            ``/reset``, a held message released into it).
    """

    start: int
    summary: tuple[str, int] | None
    turns: list[StoredMessage]
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
