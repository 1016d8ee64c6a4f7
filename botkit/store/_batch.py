"""Operations that run alone or, queued next to others of their kind, together in fewer
statements (group commit on SQLite; see ``botkit.store.engine``).

Each is a frozen dataclass: calling it runs it alone on a connection; its class's
``together`` runs a burst of them and returns their results in order. The engine finds
them by the :class:`Batchable` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from sqlalchemy import Connection

from botkit.exceptions import StoreError
from botkit.messages import ConversationRef
from botkit.store._conversations import Conversations
from botkit.store._direct import Direct
from botkit.store._statements import (
    CONTEXT,
    CONTEXTS,
    FIND_MESSAGE,
    FINISH_FENCED,
    INSERT_CALL,
    INSERT_REPLY,
    INSERT_REPLY_ROW,
    SET_STATUS,
    UPDATE_FENCED_ROW,
    UPDATE_MESSAGE,
    UPDATE_ROW,
    add_outbound,
    aware,
    chunks,
    drop_reservations,
    history_turns,
    messages,
    outbound_values,
    run_fenced,
    waiting_replies,
)
from botkit.store.records import (
    Accepted,
    Claim,
    ContextPlan,
    ContextRead,
    Finished,
    OutboundSettle,
)

__all__ = [
    "Accept",
    "Accepting",
    "Batchable",
    "Finish",
    "Intake",
    "ReadContext",
    "Update",
    "set_status",
]

R_co = TypeVar("R_co", covariant=True)


@runtime_checkable
class Batchable(Protocol[R_co]):
    """An operation that can run with the operations of its class queued next to it."""

    def __call__(self, conn: Connection) -> R_co:
        """Run alone on ``conn``."""
        ...

    @classmethod
    def together(cls, conn: Connection, ops: list[Self]) -> list[Any]:
        """Run ``ops`` (all of this class) at once on ``conn``; one result per op, in
        the order of ``ops``."""
        ...


class Intake:
    """What storing inbound messages needs: the conversations' ids and the inserts
    (``INSERT ... ON CONFLICT DO NOTHING`` on the dialect at hand), built once."""

    def __init__(self, dialect: Any, conversations: Conversations) -> None:
        self.conversations = conversations
        statement = (
            dialect.insert(messages)
            .on_conflict_do_nothing(index_elements=["channel", "direction", "external_id"])
            .returning(messages.c.id)
        )
        self.insert_one = Direct(statement)
        self.insert_many = statement.returning(messages.c.channel, messages.c.external_id)


@dataclass(frozen=True, slots=True)
class Accept:
    """Store one inbound message (the write behind ``InboundStore.accept``); a burst of
    them runs together in a few multi-row statements.

    With a ``plan``, the turns the answer will need are read in the same transaction
    (see :class:`ContextPlan`), when the message is new and in that conversation.
    """

    intake: Intake
    ref: ConversationRef
    values: dict[str, Any]  # the message's row, less its conversation
    plan: ContextPlan | None = None

    def __call__(self, conn: Connection) -> Accepting:
        conversation_id = self.intake.conversations.find(conn, self.ref)
        inserted = self.intake.insert_one.scalar(
            conn, {**self.values, "conversation_id": conversation_id}
        )
        if inserted is None:
            return Accepted(message_id=self._existing(conn), duplicate=True), conversation_id, None
        accepted = Accepted(message_id=int(inserted), duplicate=False)
        reading = self._reading(conversation_id, accepted)
        return accepted, conversation_id, reading(conn) if reading is not None else None

    def _reading(self, conversation_id: int, accepted: Accepted) -> ReadContext | None:
        """What to read for the plan: the turns up to and with the new message."""
        plan = self.plan
        if plan is None or accepted.duplicate or plan.conversation_id != conversation_id:
            return None
        return ReadContext(conversation_id, accepted.message_id + 1, plan.limit, plan.after_id)

    def _existing(self, conn: Connection) -> int:
        found = conn.execute(
            FIND_MESSAGE,
            {"b_channel": self.values["channel"], "b_external_id": self.values["external_id"]},
        ).scalar()
        if found is None:  # pragma: no cover - the insert only skips on conflict
            raise StoreError("a duplicate message vanished while it was being accepted")
        return int(found)

    @classmethod
    def together(cls, conn: Connection, ops: list[Self]) -> list[Accepting]:
        """Accept a burst: its new conversations and messages in one INSERT each (and
        the planned reads, their summaries in one query)."""
        intake = ops[0].intake
        conversations = intake.conversations.find_many(conn, [op.ref for op in ops])
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for op in ops:  # a message twice in one burst is stored once
            key = (op.values["channel"], op.values["external_id"])
            rows.setdefault(key, {**op.values, "conversation_id": conversations[op.ref.key]})
        inserted = {
            (channel, external_id): int(id_)
            for id_, channel, external_id in conn.execute(
                intake.insert_many, list(rows.values())
            ).all()
        }
        results: list[tuple[Accepted, int]] = []
        readings: dict[int, ReadContext] = {}  # by index in ops
        for index, op in enumerate(ops):
            key = (op.values["channel"], op.values["external_id"])
            new = inserted.pop(key, None)  # the first of a key takes it
            accepted = (
                Accepted(message_id=new, duplicate=False)
                if new is not None
                else Accepted(message_id=op._existing(conn), duplicate=True)
            )
            conversation_id = conversations[op.ref.key]
            results.append((accepted, conversation_id))
            reading = op._reading(conversation_id, accepted)
            if reading is not None:
                readings[index] = reading
        read = dict(
            zip(readings, ReadContext.together(conn, list(readings.values())), strict=True)
        )
        return [(a, c, read.get(i)) for i, (a, c) in enumerate(results)]


Accepting = tuple[Accepted, int, ContextRead | None]
"""What accepting a message gives: what happened, its conversation, the planned read."""


@dataclass(frozen=True, slots=True)
class Finish:
    """Finish inbound messages (the write behind ``InboundStore.finish``); a burst of
    them runs together: one INSERT of all their model calls, one look for replies
    waiting, one UPDATE of all their statuses."""

    ids: list[int]
    done: dict[str, Any]  # status, error, updated_at
    replies: list[dict[str, Any]]  # rows, see reply_row
    claim: Claim | None
    calls: list[dict[str, Any]]
    fence: list[dict[str, Any]] | None  # one (b_id, b_owner, b_token) per message
    reservations: list[int]  # spend reservations its calls settle
    settles: list[OutboundSettle]  # fenced changes of its streamed replies

    @property
    def conversations(self) -> set[int]:
        """The conversations its replies go to."""
        return {row["conversation_id"] for row in self.replies}

    def __call__(self, conn: Connection) -> Finished:
        if self.calls:
            INSERT_CALL.many(conn, self.calls)
            drop_reservations(conn, self.reservations)
        claimed = False
        if self.claim is not None and self.replies:
            claimed = not waiting_replies(conn, sorted(self.conversations))
        claim = self.claim if claimed else None
        out_ids = [add_outbound(conn, row, claim) for row in self.replies]
        for settle in self.settles:
            run_fenced(conn, UPDATE_FENCED_ROW, [settle])
        _set_done(conn, [self])
        return Finished(out_ids, claimed)

    @classmethod
    def together(cls, conn: Connection, ops: list[Self]) -> list[Finished]:
        """Finish a burst, cut where a conversation comes back (see ``_all``)."""
        # one conversation twice: the second waits for the first's replies, so the burst
        # is cut there and the parts run one after the other
        parts: list[list[Finish]] = [[]]
        answering: set[int] = set()
        for op in ops:
            conversations = op.conversations
            if conversations & answering:
                parts.append([])
                answering.clear()
            parts[-1].append(op)
            answering |= conversations
        return [result for part in parts for result in _finish_all(conn, part)]


def _finish_all(conn: Connection, ops: list[Finish]) -> list[Finished]:
    """Finish ``ops``, no two of which reply in the same conversation."""
    calls = [values for op in ops for values in op.calls]
    if calls:
        INSERT_CALL.many(conn, calls)
        drop_reservations(conn, [r for op in ops for r in op.reservations])
    asking = sorted({c for op in ops if op.claim is not None for c in op.conversations})
    waiting = waiting_replies(conn, asking) if asking else set()
    claimed = [
        op.claim is not None and bool(op.replies) and not op.conversations & waiting for op in ops
    ]
    rows = [
        outbound_values(row, op.claim if mine else None)
        for op, mine in zip(ops, claimed, strict=True)
        for row in op.replies
    ]
    # multi-row INSERT ... RETURNING: the rows take consecutive ids in the order given
    # (a new rowid is one more than the largest, and only this transaction writes),
    # so the ids sorted are the rows' ids in order
    if len(rows) == 1:
        inserted = [int(INSERT_REPLY_ROW.scalar(conn, rows[0]))]
    else:
        inserted = sorted(conn.execute(INSERT_REPLY, rows).scalars().all()) if rows else []
    if inserted and inserted[-1] - inserted[0] + 1 != len(inserted):
        # SQLite picks random free ids once the largest possible one is taken: the
        # order is lost, so this shared write fails and each finish is retried alone
        raise StoreError("reply ids out of order in a shared insert")
    ids = iter(inserted)
    results = [
        Finished([int(next(ids)) for _ in op.replies], mine)
        for op, mine in zip(ops, claimed, strict=True)
    ]
    for settle in (settle for op in ops for settle in op.settles):
        run_fenced(conn, UPDATE_FENCED_ROW, [settle])
    _set_done(conn, ops)
    return results


def _set_done(conn: Connection, ops: list[Finish]) -> None:
    """The finished messages' new statuses: one UPDATE ... WHERE id IN (...) for each
    outcome (status and error), stamped with the latest time among them; or, when a
    message is finished twice in the burst, one UPDATE per row in queue order (the last
    one wins, as one by one). A fenced finish updates its rows one by one, each only
    under its holder's token."""
    for op in ops:
        if op.fence is not None:
            run_fenced(conn, FINISH_FENCED, [{**op.done, **f} for f in op.fence])
    ops = [op for op in ops if op.fence is None]
    every = [i for op in ops for i in op.ids]
    if len(set(every)) < len(every):
        conn.execute(UPDATE_MESSAGE, [{**op.done, "b_id": i} for op in ops for i in op.ids])
        return
    outcomes: dict[tuple[Any, Any], tuple[datetime, list[int]]] = {}
    for op in ops:
        key = (op.done["status"], op.done["error"])
        when, ids = outcomes.get(key, (op.done["updated_at"], []))
        ids.extend(op.ids)
        outcomes[key] = (max(when, op.done["updated_at"]), ids)
    for (status, error), (when, ids) in outcomes.items():
        set_status(conn, ids, {"status": status, "error": error, "updated_at": when})


def set_status(conn: Connection, ids: list[int], values: dict[str, Any]) -> None:
    """Set ``values`` (status, error, updated_at) on the messages ``ids``."""
    if len(ids) == 1:  # the usual case: no IN list to render
        UPDATE_ROW.rowcount(conn, {**values, "b_id": ids[0]})
        return
    for chunk in chunks(ids):
        conn.execute(SET_STATUS, {**values, "b_ids": chunk})


@dataclass(frozen=True, slots=True)
class Update:
    """Set columns of one message (``OutboundStore.update``); a burst of delivery marks
    runs as one UPDATE executed for many rows."""

    params: dict[str, Any]  # the columns to set, and ``b_id``

    def __call__(self, conn: Connection) -> None:
        UPDATE_ROW.rowcount(conn, self.params)

    @classmethod
    def together(cls, conn: Connection, ops: list[Self]) -> list[None]:
        """One executemany UPDATE when the burst's rows are distinct and alike."""
        ids = [op.params["b_id"] for op in ops]
        shapes = {frozenset(op.params) for op in ops}
        if len(set(ids)) < len(ids) or len(shapes) > 1:  # keep the order that matters
            for op in ops:
                op(conn)
        else:
            conn.execute(UPDATE_MESSAGE, [op.params for op in ops])
        return [None] * len(ops)


_NO_CONVERSATION = (0, None, None, None)


@dataclass(frozen=True, slots=True)
class ReadContext:
    """Read a conversation's running summary and newest turns
    (``HistoryStore.recent_turns``); reads of many conversations at once share one
    query for their summaries."""

    conversation_id: int
    before_id: int | None
    limit: int
    after_id: int = 0

    def __call__(self, conn: Connection) -> ContextRead:
        found = CONTEXT.rows(conn, {"b_conversation_id": self.conversation_id})
        return self._turns(conn, tuple(found[0]) if found else _NO_CONVERSATION)

    def _turns(self, conn: Connection, found: tuple[Any, ...]) -> ContextRead:
        start, changed, text, covers = found
        summary = (text, int(covers)) if text is not None and covers is not None else None
        after = max(start or 0, summary[1] if summary else 0, self.after_id)
        rows = history_turns(conn, self.conversation_id, after, self.before_id, self.limit)
        return ContextRead(int(start or 0), summary, rows, aware(changed))

    @classmethod
    def together(cls, conn: Connection, ops: list[Self]) -> list[ContextRead]:
        """The summaries of every conversation read in one query."""
        wanted = sorted({op.conversation_id for op in ops})
        found: dict[int, tuple[Any, ...]] = {}
        for chunk in chunks(wanted):
            for id_, *rest in conn.execute(CONTEXTS, {"b_ids": chunk}).all():
                found[int(id_)] = tuple(rest)
        return [op._turns(conn, found.get(op.conversation_id, _NO_CONVERSATION)) for op in ops]
