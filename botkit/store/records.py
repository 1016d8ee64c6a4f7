"""Plain snapshots of stored rows, handed out of the store so no ORM object leaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botkit.messages import ConversationRef

__all__ = ["StoredMessage", "UsageRow"]


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
