"""What the operations page reads: conversations, one conversation, what needs a person,
and the work each process holds. Read-only SQLAlchemy Core on the store's tables.

Lists are paged by keyset on ids (``id < before``, newest first), never by ``OFFSET``:
a page costs the same however deep it is, and rows arriving meanwhile shift nothing.
Spend is not here: it is :meth:`botkit.store.usage.UsageStore.report`, the same figures as
``botkit usage``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Integer, and_, exists, false, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from botkit.admin.records import (
    CallLine,
    ConversationLine,
    ConversationPage,
    ConversationView,
    LeaseLine,
    MessageLine,
    WorkLine,
)
from botkit.exceptions import StoreError
from botkit.store import Database
from botkit.store.models import Base
from botkit.store.records import UNDELIVERED_OUT, UNFINISHED_IN

__all__ = ["SPAM", "SPAM_REASON", "SPAM_RELEASED", "AdminQueries"]

T = TypeVar("T")
PAGE = 50  # conversations a page
MESSAGES_PAGE = 100  # messages of one conversation a page
ATTENTION = 100  # rows of each "needs a person" list
_conversations = Base.metadata.tables["conversations"]
_messages = Base.metadata.tables["messages"]
_calls = Base.metadata.tables["model_calls"]
_leases = Base.metadata.tables["leases"]
# the spam plugin's annotations (botkit_spam): a held message is skipped with spam=true
# until a person releases it (spam_released)
SPAM, SPAM_RELEASED, SPAM_REASON = "spam", "spam_released", "spam_reason"


class AdminQueries:
    """The operations page's reads, each in one read transaction.

    Raises:
        StoreError: the database failed (every method).
    """

    def __init__(self, database: Database) -> None:
        self._db = database

    async def conversations(
        self,
        *,
        before: int | None = None,
        user: str = "",
        text: str = "",
        channel: str = "",
        limit: int = PAGE,
    ) -> ConversationPage:
        """Conversations of every channel, newest first, ``limit`` a page.

        Args:
            before: only conversations with a smaller id (the previous page's key).
            user: only those with a message from a sender whose id or name contains this.
            text: only those with a message containing this (case-insensitive).
            channel: only this channel.
        """
        conv = _conversations.c
        query = select(conv.id, conv.channel, conv.chat_id, conv.thread_id, conv.created_at)
        if before is not None:
            query = query.where(conv.id < before)
        if channel:
            query = query.where(conv.channel == channel)
        if user.strip():
            query = query.where(_any_message(_from_user(user.strip())))
        if text.strip():
            query = query.where(
                _any_message(_messages.c.text.icontains(text.strip(), autoescape=True))
            )
        query = query.order_by(conv.id.desc()).limit(limit + 1)

        def op(conn: Connection) -> ConversationPage:
            rows = conn.execute(query).all()
            more = len(rows) > limit
            lines = _with_activity(conn, [ConversationLine(*r) for r in rows[:limit]])
            return ConversationPage(lines, lines[-1].id if more and lines else None)

        return await self._read("list conversations", op)

    async def channels(self) -> list[str]:
        """Every channel that has a conversation."""
        query = select(_conversations.c.channel).distinct().order_by(_conversations.c.channel)
        return await self._read(
            "list channels", lambda conn: [str(c) for c in conn.execute(query).scalars()]
        )

    async def conversation(
        self, conversation_id: int, *, before: int | None = None, limit: int = MESSAGES_PAGE
    ) -> ConversationView | None:
        """One conversation with its newest ``limit`` messages (older than ``before``), the
        model calls made for them, and its totals; ``None`` when there is no such one."""
        conv = _conversations.c
        head = select(conv.id, conv.channel, conv.chat_id, conv.thread_id, conv.created_at).where(
            conv.id == conversation_id
        )
        page = select(*_MESSAGE_COLUMNS).where(_messages.c.conversation_id == conversation_id)
        if before is not None:
            page = page.where(_messages.c.id < before)
        page = page.order_by(_messages.c.id.desc()).limit(limit + 1)
        totals = select(
            func.sum(func.cast(_calls.c.usage_estimated, _INT)),
            func.sum(func.cast(and_(_calls.c.cost_nanos.is_(None), _calls.c.ok.is_(True)), _INT)),
        ).where(_calls.c.conversation_id == conversation_id)

        def op(conn: Connection) -> ConversationView | None:
            found = conn.execute(head).first()
            if found is None:
                return None
            [line] = _with_activity(conn, [ConversationLine(*found)])
            rows = conn.execute(page).all()
            messages = [_message_line(r) for r in reversed(rows[:limit])]
            ids = [m.id for m in messages]
            calls: dict[int, list[CallLine]] = {i: [] for i in ids}
            unattached: list[CallLine] = []
            shown: ColumnElement[bool] = _calls.c.message_id.in_(ids) if ids else false()
            if before is None:  # the newest page also shows calls tied to no message
                loose = and_(
                    _calls.c.conversation_id == conversation_id, _calls.c.message_id.is_(None)
                )
                shown = or_(shown, loose)
            for r in conn.execute(select(*_CALL_COLUMNS).where(shown).order_by(_calls.c.id)):
                call = CallLine(**r._mapping)
                if call.message_id is None:
                    unattached.append(call)
                else:
                    calls[call.message_id].append(call)
            estimated, unpriced = conn.execute(totals).one()
            return ConversationView(
                line,
                messages,
                calls,
                unattached,
                messages[0].id if len(rows) > limit and messages else None,
                int(estimated or 0),
                int(unpriced or 0),
            )

        return await self._read("load a conversation", op)

    async def failed_replies(self, limit: int = ATTENTION) -> tuple[list[MessageLine], int]:
        """Replies the outbox gave up on (newest first, ``limit`` of them), and how many."""
        return await self._attention(
            "list failed replies",
            and_(_messages.c.direction == "out", _messages.c.status == "failed"),
            limit,
        )

    async def failed_messages(self, limit: int = ATTENTION) -> tuple[list[MessageLine], int]:
        """Inbound messages whose answer failed (the person got an apology), and how many."""
        return await self._attention(
            "list failed messages",
            and_(_messages.c.direction == "in", _messages.c.status == "failed"),
            limit,
        )

    async def held_spam(self, limit: int = ATTENTION) -> tuple[list[MessageLine], int]:
        """Messages the spam filter holds and no one has released, and how many."""
        return await self._attention("list held spam", _HELD, limit)

    async def skipped_at_intake(self, limit: int = ATTENTION) -> tuple[list[MessageLine], int]:
        """Messages stored but never to be answered, with the reason their channel gave
        (mail skipped by the email loop guard, mail too large), and how many."""
        return await self._attention(
            "list skipped messages",
            and_(_IN_SKIPPED, _messages.c.error.is_not(None)),
            limit,
        )

    async def message(self, message_id: int) -> MessageLine | None:
        """One message, or ``None``."""
        query = select(*_MESSAGE_COLUMNS).where(_messages.c.id == message_id)

        def op(conn: Connection) -> MessageLine | None:
            row = conn.execute(query).first()
            return None if row is None else _message_line(row)

        return await self._read("load a message", op)

    async def work(self) -> list[WorkLine]:
        """Unfinished inbound messages and undelivered replies, by the process holding
        them (``claimed_by``), with their claims' ends (``claimed_until``)."""
        m = _messages.c
        unfinished = or_(
            and_(m.direction == "in", m.status.in_(UNFINISHED_IN)),
            and_(m.direction == "out", m.status.in_((*UNDELIVERED_OUT, "streaming"))),
        )
        query = (
            select(
                m.claimed_by,
                m.direction,
                m.status,
                func.count(m.id),
                func.min(m.claimed_until),
                func.max(m.claimed_until),
                func.min(m.created_at),
            )
            .where(unfinished)
            .group_by(m.claimed_by, m.direction, m.status)
            .order_by(m.claimed_by, m.direction, m.status)
        )
        return await self._read(
            "list work in progress",
            lambda conn: [
                WorkLine(owner, d, s, int(n), _aware(lo), _aware(hi), _aware(old))
                for owner, d, s, n, lo, hi, old in conn.execute(query)
            ],
        )

    async def leases(self) -> list[LeaseLine]:
        """Every singleton lease, by name."""
        query = select(_leases.c.name, _leases.c.holder, _leases.c.until).order_by(_leases.c.name)
        return await self._read(
            "list leases", lambda conn: [LeaseLine(*r) for r in conn.execute(query)]
        )

    async def _attention(
        self, what: str, where: ColumnElement[bool], limit: int
    ) -> tuple[list[MessageLine], int]:
        rows = select(*_MESSAGE_COLUMNS).where(where).order_by(_messages.c.id.desc()).limit(limit)
        count = select(func.count(_messages.c.id)).where(where)

        def op(conn: Connection) -> tuple[list[MessageLine], int]:
            lines = [_message_line(r) for r in conn.execute(rows)]
            return lines, int(conn.execute(count).scalar_one())

        return await self._read(what, op)

    async def _read(self, what: str, op: Callable[[Connection], T]) -> T:
        try:
            return await self._db.read(op)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"could not {what}: {type(exc).__name__}") from exc


_INT = Integer()
_IN_SKIPPED = and_(_messages.c.direction == "in", _messages.c.status == "skipped")
_HELD = and_(
    _IN_SKIPPED,
    _messages.c.meta[SPAM].as_boolean().is_(True),
    or_(
        _messages.c.meta[SPAM_RELEASED].as_boolean().is_(None),
        _messages.c.meta[SPAM_RELEASED].as_boolean().is_(False),
    ),
)
_MESSAGE_COLUMNS = (
    _messages.c.id,
    _messages.c.conversation_id,
    _messages.c.channel,
    _messages.c.direction,
    _messages.c.status,
    _messages.c.sender_id,
    _messages.c.sender_name,
    _messages.c.text,
    _messages.c.error,
    _messages.c.attempts,
    _messages.c.reply_to_id,
    _messages.c.meta,
    _messages.c.claimed_by,
    _messages.c.claimed_until,
    _messages.c.created_at,
)
_CALL_COLUMNS = (
    _calls.c.id,
    _calls.c.message_id,
    _calls.c.purpose,
    _calls.c.model,
    _calls.c.prompt_tokens,
    _calls.c.completion_tokens,
    _calls.c.cost_nanos,
    _calls.c.latency_ms,
    _calls.c.ok,
    _calls.c.error,
    _calls.c.usage_estimated.label("estimated"),
    _calls.c.created_at,
)


def _any_message(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """Some message of the conversation matches ``condition``."""
    return exists().where(_messages.c.conversation_id == _conversations.c.id, condition)


def _from_user(user: str) -> ColumnElement[bool]:
    return or_(
        _messages.c.sender_id.icontains(user, autoescape=True),
        _messages.c.sender_name.icontains(user, autoescape=True),
    )


def _with_activity(conn: Connection, lines: Sequence[ConversationLine]) -> list[ConversationLine]:
    """The lines with their message counts, last message and spend (three queries for a
    whole page, each through an index on the conversation)."""
    ids = [line.id for line in lines]
    if not ids:
        return []
    m, c = _messages.c, _calls.c
    activity = {
        cid: (int(n), int(last))
        for cid, n, last in conn.execute(
            select(m.conversation_id, func.count(m.id), func.max(m.id))
            .where(m.conversation_id.in_(ids))
            .group_by(m.conversation_id)
        )
    }
    last = {
        r.id: r
        for r in conn.execute(
            select(m.id, m.created_at, m.sender_name, m.sender_id, m.direction, m.text).where(
                m.id.in_([last for _, last in activity.values()])
            )
        )
    }
    spend = {
        cid: (int(n), int(tokens or 0), int(cost or 0))
        for cid, n, tokens, cost in conn.execute(
            select(
                c.conversation_id,
                func.count(c.id),
                func.sum(
                    func.coalesce(c.prompt_tokens, 0) + func.coalesce(c.completion_tokens, 0)
                ),
                func.sum(c.cost_nanos),
            )
            .where(c.conversation_id.in_(ids))
            .group_by(c.conversation_id)
        )
    }
    result = []
    for line in lines:
        count, last_id = activity.get(line.id, (0, 0))
        row = last.get(last_id)
        calls, tokens, cost = spend.get(line.id, (0, 0, 0))
        sender = None
        if row is not None:
            sender = "bot" if row.direction == "out" else (row.sender_name or row.sender_id)
        result.append(
            ConversationLine(
                line.id,
                line.channel,
                line.chat_id,
                line.thread_id,
                line.created_at,
                count,
                row.created_at if row is not None else None,
                sender,
                row.text[:200] if row is not None else "",
                calls,
                tokens,
                cost,
            )
        )
    return result


def _message_line(r: Any) -> MessageLine:
    values = list(r)
    values[11] = dict(values[11] or {})  # meta
    return MessageLine(*values)


def _aware(value: Any) -> datetime | None:
    """An aggregate's timestamp, made UTC-aware whichever way the driver returned it."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
