"""The tables, the statements of the per-message path (built once: building a statement
costs more than running it), and the helpers that turn rows into snapshots and back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from botkit.exceptions import ClaimLostError, StoreError
from botkit.messages import Attachment, ConversationRef
from botkit.store._direct import Direct
from botkit.store.models import Base, utcnow
from botkit.store.records import (
    HISTORY_IN,
    UNDELIVERED_OUT,
    UNFINISHED_IN,
    CallRow,
    Claim,
    Fence,
    HistoryTurn,
    OutboundDraft,
    StoredMessage,
)

T = TypeVar("T")

_IN_CHUNK = 500  # values in one IN (...): SQLite allows 32766 parameters a statement

conversations = Base.metadata.tables["conversations"]
messages = Base.metadata.tables["messages"]
calls = Base.metadata.tables["model_calls"]
state = Base.metadata.tables["state"]
reservations = Base.metadata.tables["spend_reservations"]
summaries = Base.metadata.tables["conversation_summaries"]
tool_calls = Base.metadata.tables["tool_calls"]
UPDATABLE = frozenset(messages.c.keys()) - {"id"}
_JSON_COLUMNS = frozenset({"meta", "attachments", "raw"})


def one_of(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (values)`` for a prebuilt statement: written as ORs of plain bound
    parameters, because SQLAlchemy renders an IN list anew at every execution."""
    return or_(*(column == value for value in values))


def chunks(values: list[T]) -> list[list[T]]:
    """``values`` cut to fit one IN (...) each, bounding a statement's parameters."""
    return [values[i : i + _IN_CHUNK] for i in range(0, len(values), _IN_CHUNK)]


# Plain columns rather than ORM entities: history is read for every answer, and rows
# without identity-map bookkeeping come back several times faster.
_SNAPSHOT = (
    messages.c.id,
    messages.c.conversation_id,
    conversations.c.channel,
    conversations.c.chat_id,
    conversations.c.thread_id,
    messages.c.direction,
    messages.c.text,
    messages.c.status,
    messages.c.external_id,
    messages.c.sender_id,
    messages.c.sender_name,
    messages.c.markup,
    messages.c.reply_to_id,
    messages.c.attempts,
    messages.c.next_attempt_at,
    messages.c.error,
    messages.c.meta,
    messages.c.attachments,
    messages.c.created_at,
    messages.c.claimed_by,
)
SNAPSHOT_QUERY = select(*_SNAPSHOT).select_from(
    messages.join(conversations, messages.c.conversation_id == conversations.c.id)
)


def _history_query(*, bounded: bool, lean: bool = False) -> Select[Any]:
    """The newest turns of a conversation after one id (and before another, if
    ``bounded``), newest first, through the (conversation, id) index: as snapshots, or
    ``lean``, as :class:`HistoryTurn` columns (no join, nothing to convert)."""
    conditions = [
        messages.c.conversation_id == bindparam("b_conversation_id"),
        messages.c.id > bindparam("b_after_id"),
        or_(
            and_(messages.c.direction == "in", one_of(messages.c.status, HISTORY_IN)),
            and_(
                messages.c.direction == "out",
                messages.c.status != "failed",
                messages.c.status != "interrupted",
            ),
        ),
    ]
    if bounded:
        conditions.append(messages.c.id < bindparam("b_before_id"))
    query = select(*_TURN_COLUMNS) if lean else SNAPSHOT_QUERY
    return (
        query.where(*conditions)
        .order_by(messages.c.id.desc())
        .limit(bindparam("b_limit", type_=Integer()))
    )


_TURN_COLUMNS = (
    messages.c.id,
    messages.c.direction,
    messages.c.status,
    messages.c.sender_id,
    messages.c.sender_name,
    messages.c.text,
)
_HISTORY = Direct(_history_query(bounded=False))
_HISTORY_BEFORE = Direct(_history_query(bounded=True))
_TURNS = Direct(_history_query(bounded=False, lean=True))
_TURNS_BEFORE = Direct(_history_query(bounded=True, lean=True))
# the running summary and where history starts, for one conversation
CONTEXT = Direct(
    select(
        conversations.c.history_start_id,
        conversations.c.updated_at,
        summaries.c.text,
        summaries.c.covers_through_id,
    )
    .outerjoin(summaries, summaries.c.conversation_id == conversations.c.id)
    .where(conversations.c.id == bindparam("b_conversation_id"))
)
# the same for many conversations at once
CONTEXTS = (
    select(
        conversations.c.id,
        conversations.c.history_start_id,
        conversations.c.updated_at,
        summaries.c.text,
        summaries.c.covers_through_id,
    )
    .outerjoin(summaries, summaries.c.conversation_id == conversations.c.id)
    .where(conversations.c.id.in_(bindparam("b_ids", expanding=True)))
)
FIND_CONVERSATION = select(conversations.c.id).where(conversations.c.key == bindparam("b_key"))
FIND_MESSAGE = select(messages.c.id).where(
    messages.c.channel == bindparam("b_channel"),
    messages.c.direction == "in",
    messages.c.external_id == bindparam("b_external_id"),
)
INSERT_CALL = Direct(insert(calls))
INSERT_REPLY = insert(messages).returning(messages.c.id)
INSERT_REPLY_ROW = Direct(INSERT_REPLY)  # the same, for one row
# the conversations among these with an earlier reply still to go out (or streaming)
WAITING_REPLIES = (
    select(messages.c.conversation_id)
    .where(
        messages.c.conversation_id.in_(bindparam("b_ids", expanding=True)),
        messages.c.direction == "out",
        one_of(messages.c.status, (*UNDELIVERED_OUT, "streaming")),
    )
    .distinct()
)
# the same for one conversation: whether it has one
_WAITING_REPLY = Direct(
    select(messages.c.conversation_id)
    .where(
        messages.c.conversation_id == bindparam("b_conversation_id"),
        messages.c.direction == "out",
        one_of(messages.c.status, (*UNDELIVERED_OUT, "streaming")),
    )
    .limit(1)
)
# SET takes the columns named in the parameters
UPDATE_MESSAGE = update(messages).where(messages.c.id == bindparam("b_id"))
UPDATE_ROW = Direct(UPDATE_MESSAGE)  # the same, for one row
SET_STATUS = update(messages).where(messages.c.id.in_(bindparam("b_ids", expanding=True)))
NOW = select(func.now())
INSERT_RESERVATION = insert(reservations).returning(reservations.c.id)
# reservations take their ids one transaction at a time, so ids follow commit order
RESERVATION_LOCK = select(func.pg_advisory_xact_lock(0x626F746B6974))
OLDER_UNFINISHED = (
    select(messages.c.id)
    .where(
        messages.c.conversation_id == bindparam("b_conversation_id"),
        messages.c.id < bindparam("b_before_id"),
        messages.c.direction == "in",
        one_of(messages.c.status, UNFINISHED_IN),
    )
    .limit(1)
)
# an update that happens only while the row is claimed by b_owner with token b_token
UPDATE_FENCED = update(messages).where(
    messages.c.id == bindparam("b_id"),
    messages.c.claimed_by == bindparam("b_owner"),
    messages.c.claim_token == bindparam("b_token"),
)
UPDATE_FENCED_ROW = Direct(UPDATE_FENCED)
# a finish happens once: a retry after a commit the client did not hear of (the
# connection lost mid-commit) finds the message finished and changes nothing
_FINISH_FENCED = UPDATE_FENCED.where(one_of(messages.c.status, UNFINISHED_IN))
FINISH_FENCED = Direct(_FINISH_FENCED)
# changes nothing, only while the message is held unfinished (and locks its row)
STILL_HELD = Direct(_FINISH_FENCED.values(claim_token=messages.c.claim_token))
INSERT_TOOL_CALL = insert(tool_calls).returning(tool_calls.c.id)


def snapshot(r: Any) -> StoredMessage:
    """A ``SNAPSHOT_QUERY`` row as a ``StoredMessage``."""
    (
        id_, conversation_id, channel, chat_id, thread_id, direction, text, status,
        external_id, sender_id, sender_name, markup, reply_to_id, attempts, next_attempt_at,
        error, meta, attachments, created_at, claimed_by,
    ) = r  # fmt: skip
    return StoredMessage(
        id=id_,
        conversation_id=conversation_id,
        conversation=ConversationRef(channel, chat_id, thread_id),
        direction=direction,
        text=text,
        status=status,
        external_id=external_id,
        sender_id=sender_id,
        sender_name=sender_name,
        markup=markup,
        reply_to_id=reply_to_id,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        error=error,
        meta=dict(meta or {}),
        attachments=list(attachments or []),
        created_at=created_at,
        claimed_by=claimed_by,
    )


def snapshots(query: Select[Any]) -> Callable[[Connection], list[StoredMessage]]:
    """An operation reading ``query`` (over ``SNAPSHOT_QUERY``) as snapshots."""
    return lambda conn: [snapshot(r) for r in conn.execute(query).all()]


def history_rows(
    conn: Connection, conversation_id: int, after_id: int, before_id: int | None, limit: int
) -> list[StoredMessage]:
    """The newest ``limit`` turns after ``after_id`` (and before ``before_id``), oldest
    first."""
    rows = _newest(conn, _HISTORY, _HISTORY_BEFORE, conversation_id, after_id, before_id, limit)
    return [snapshot(r) for r in rows]


def history_turns(
    conn: Connection, conversation_id: int, after_id: int, before_id: int | None, limit: int
) -> list[HistoryTurn]:
    """:func:`history_rows` as :class:`HistoryTurn` tuples (an answer's context)."""
    rows = _newest(conn, _TURNS, _TURNS_BEFORE, conversation_id, after_id, before_id, limit)
    return [HistoryTurn._make(r) for r in rows]


def _newest(
    conn: Connection,
    after: Direct,
    between: Direct,
    conversation_id: int,
    after_id: int,
    before_id: int | None,
    limit: int,
) -> list[Sequence[Any]]:
    """The rows of a history query (``after``, or ``between`` when ``before_id`` bounds
    it), oldest first."""
    params = {"b_conversation_id": conversation_id, "b_after_id": after_id, "b_limit": limit}
    if before_id is None:
        rows = after.rows(conn, params)
    else:
        rows = between.rows(conn, {**params, "b_before_id": before_id})
    return rows[::-1]


def rowcount(query: Any) -> Callable[[Connection], int]:
    """An operation running an UPDATE or DELETE and saying how many rows it touched."""
    return lambda conn: int(getattr(conn.execute(query), "rowcount", 0) or 0)


def aware(value: datetime | None) -> datetime | None:
    """A timestamp read without the column type's conversion, made UTC-aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def conversation_row(ref: ConversationRef, now: datetime) -> dict[str, Any]:
    """A new conversation's row."""
    return {
        "key": ref.key,
        "channel": ref.channel,
        "chat_id": ref.chat_id,
        "thread_id": ref.thread_id,
        "history_start_id": 0,
        "created_at": now,
        "updated_at": now,
    }


def reply_row(draft: OutboundDraft, now: datetime) -> dict[str, Any]:
    """A reply's row, taken on the event loop's thread: the caller may change its draft
    (its metadata) while the database thread stores it."""
    return {
        "conversation_id": draft.conversation_id,
        "channel": draft.channel,
        "direction": "out",
        "text": draft.text,
        "markup": draft.markup,
        "status": draft.status,
        "reply_to_id": draft.reply_to_id,
        "meta": jsonable(dict(draft.meta)) or None,
        "created_at": now,
        "updated_at": now,
    }


def outbound_values(row: dict[str, Any], claim: Claim | None) -> dict[str, Any]:
    """A reply's row as stored: claimed by ``claim`` (first attempt counted), if any."""
    sending = claim is not None and row["status"] == "pending"  # sent right away
    return {
        **row,
        "status": "sending" if sending else row["status"],
        "attempts": 1 if sending else 0,
        "claimed_by": claim.owner if claim else None,
        "claimed_until": claim.until if claim else None,
        "claim_token": 1 if claim else 0,  # a new row's first claim
    }


def waiting_replies(conn: Connection, conversation_ids: Sequence[int]) -> set[int]:
    """The conversations among these with an earlier reply still to go out (or
    streaming)."""
    if len(conversation_ids) == 1:
        found = _WAITING_REPLY.rows(conn, {"b_conversation_id": conversation_ids[0]})
        return {int(row[0]) for row in found}
    waiting: set[int] = set()
    for chunk in chunks(sorted(conversation_ids)):
        waiting.update(conn.execute(WAITING_REPLIES, {"b_ids": chunk}).scalars())
    return waiting


def add_outbound(conn: Connection, row: dict[str, Any], claim: Claim | None) -> int:
    """Insert one reply's row; its id."""
    inserted = INSERT_REPLY_ROW.scalar(conn, outbound_values(row, claim))
    if inserted is None:  # pragma: no cover - an insert always returns its id
        raise StoreError("the reply was not stored")
    return int(inserted)


def write_reply(conn: Connection, draft: OutboundDraft) -> int:
    """Queue one reply on ``conn`` (a scheduled job's, stored with its completion)."""
    return add_outbound(conn, reply_row(draft, utcnow()), None)


def update_params(outbound_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """The ``UPDATE_MESSAGE`` parameters setting ``values`` on one message."""
    unknown = sorted(set(values) - UPDATABLE)
    if unknown:
        raise StoreError(f"messages have no column {', '.join(unknown)} to update")
    params = {**values, "updated_at": utcnow(), "b_id": outbound_id}
    for column in _JSON_COLUMNS & set(values):  # a snapshot: the caller keeps its own
        params[column] = jsonable(values[column])
    return params


_CALL_FIELDS = tuple(f.name for f in dataclasses.fields(CallRow) if f.name != "reservation_id")


def call_values(call: CallRow, now: datetime) -> dict[str, Any]:
    """A model call's row."""
    # not dataclasses.asdict: it deep-copies every field, several times slower
    values = {name: getattr(call, name) for name in _CALL_FIELDS}
    values["created_at"] = now
    return values


def reservations_of(made: Sequence[CallRow]) -> list[int]:
    """The spend reservations these calls settle."""
    return [c.reservation_id for c in made if c.reservation_id is not None]


def drop_reservations(conn: Connection, ids: list[int]) -> None:
    """The calls holding these reservations are stored now: they count instead."""
    for chunk in chunks(ids):
        conn.execute(delete(reservations).where(reservations.c.id.in_(chunk)))


def fence_params(
    ids: Sequence[int], fence: Fence | None, claim: Claim | None
) -> list[dict[str, Any]] | None:
    """The fenced-update parameters for ``ids`` under ``claim``; ``None`` unfenced."""
    if fence is None:
        return None
    if claim is None:
        raise ValueError("a fenced write needs the claim of its owner")
    return [{"b_id": i, "b_owner": claim.owner, "b_token": fence[i]} for i in ids]


def held_params(held: tuple[str, Fence] | None) -> list[dict[str, Any]]:
    """The ``STILL_HELD`` parameters for (owner, fence): one per message; none unfenced."""
    if held is None:
        return []
    owner, fence = held
    return [{"b_id": i, "b_owner": owner, "b_token": t} for i, t in fence.items()]


def run_fenced(conn: Connection, statement: Any, params: list[dict[str, Any]]) -> None:
    """Run a fenced UPDATE (a :class:`Direct` one, or any) once per row; any row not
    changed means its claim moved on: raise, so the whole transaction is rolled back."""
    for row in params:
        if isinstance(statement, Direct):
            changed = statement.rowcount(conn, row)
        else:
            changed = conn.execute(statement, row).rowcount
        if changed != 1:
            raise ClaimLostError(
                f"message {row['b_id']} is held by another process now, or was finished "
                f"already (token {row['b_token']} of {row['b_owner']})"
            )


def attachment_json(a: Attachment) -> dict[str, Any]:
    """An attachment as stored with its message (its bytes are not)."""
    return {"name": a.name, "content_type": a.content_type, "size": a.size, "url": a.url}


def jsonable(value: Any) -> Any:
    """Make adapter payloads storable as JSON: datetimes and bytes become strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime | timedelta | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)
