"""Rows written straight into a bot's database, for pages that need many or old ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from botkit.store import Database
from botkit.store.models import Base

_conversations = Base.metadata.tables["conversations"]
_messages = Base.metadata.tables["messages"]
_calls = Base.metadata.tables["model_calls"]
NOW = datetime.now(UTC)


async def conversations(
    database: Database, count: int, *, channel: str = "test", start: int = 1
) -> list[int]:
    """``count`` conversations of one inbound message each (``chat-N`` from ``user-N``);
    returns their ids, oldest first."""

    def op(conn: Connection) -> list[int]:
        ids = []
        for n in range(start, start + count):
            cid = conn.execute(
                insert(_conversations).returning(_conversations.c.id),
                {
                    "key": f"{channel}:chat-{n}:",
                    "channel": channel,
                    "chat_id": f"chat-{n}",
                    "thread_id": None,
                    "history_start_id": 0,
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            ).scalar_one()
            conn.execute(insert(_messages), [message(cid, f"message {n}", sender=f"user-{n}")])
            ids.append(int(cid))
        return ids

    return await database.write(op)


def message(
    conversation_id: int,
    text: str,
    *,
    sender: str = "user",
    direction: str = "in",
    status: str = "done",
    channel: str = "test",
    **values: Any,
) -> dict[str, Any]:
    """The columns of one stored message."""
    return {
        "conversation_id": conversation_id,
        "channel": channel,
        "direction": direction,
        "external_id": None,
        "sender_id": sender if direction == "in" else None,
        "sender_name": sender.title() if direction == "in" else None,
        "text": text,
        "markup": "plain",
        "status": status,
        "attempts": 0,
        "claim_token": 0,
        "claimed_by": None,
        "claimed_until": None,
        "next_attempt_at": None,
        "error": None,
        "meta": None,
        "created_at": NOW,
        "updated_at": NOW,
        **values,
    }


async def messages(database: Database, rows: Sequence[dict[str, Any]]) -> None:
    """Insert these messages."""
    await database.write(lambda conn: conn.execute(insert(_messages), list(rows)))


def call(
    *,
    days_ago: int = 0,
    model: str = "gpt-test",
    channel: str | None = "test",
    user: str | None = "u1",
    prompt: int = 100,
    completion: int = 20,
    cost_nanos: int | None = 1_000_000,
    conversation_id: int | None = None,
    message_id: int | None = None,
    estimated: bool = False,
    ok: bool = True,
) -> dict[str, Any]:
    """The columns of one model call, made ``days_ago`` days ago."""
    return {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "channel": channel,
        "user_id": user,
        "purpose": "chat",
        "model": model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_nanos": cost_nanos,
        "latency_ms": 12.0,
        "ok": ok,
        "error": None if ok else "boom",
        "attempt": 1,
        "usage_estimated": estimated,
        "created_at": NOW - timedelta(days=days_ago),
    }


async def calls(database: Database, rows: Sequence[dict[str, Any]]) -> None:
    """Insert these model calls."""
    await database.write(lambda conn: conn.execute(insert(_calls), list(rows)))
