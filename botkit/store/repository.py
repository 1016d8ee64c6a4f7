"""Every query botkit runs, behind one ``Store`` object the rest of the core uses.

Queries are SQLAlchemy Core on the tables of ``botkit.store.models``, run as operations of
``Database`` (plain functions of a connection, one transaction each). The statements of
the per-message path are built once: building a statement costs more than running it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from botkit.exceptions import ClaimLostError, StoreError, StoreUnavailableError
from botkit.inbox import Accepted
from botkit.messages import Attachment, ConversationRef, Message
from botkit.store._timed import short_error
from botkit.store.engine import Database
from botkit.store.jobs import JobStore
from botkit.store.leases import LeaseStore
from botkit.store.models import Base, utcnow
from botkit.store.records import ContextRead, StoredMessage, ToolCallRecord, UsageRow

__all__ = [
    "NANOS_PER_DOLLAR",
    "Claim",
    "Fence",
    "Finished",
    "NamespaceState",
    "Resumable",
    "Store",
]

T = TypeVar("T")
NANOS_PER_DOLLAR = 1_000_000_000
UNFINISHED_IN = ("pending", "processing")
_CONVERSATION_CACHE = 100_000
_IN_CHUNK = 500  # values in one IN (...): SQLite allows 32766 parameters a statement
UNDELIVERED_OUT = ("pending", "sending")
# replies that reached (or may have reached) the channel for a message still being
# answered: a new answer to that message takes their place instead of adding to them
EARLIER_OUT = ("pending", "sending", "delivered", "interrupted")
# inbound turns the model sees: answered, being answered, or kept as passive context
# (a pending one is the message being answered, or one of its coalesced burst: later
# pending messages are excluded by the ``before_id`` every history read gives)
HISTORY_IN = ("pending", "processing", "done", "context")

_conversations = Base.metadata.tables["conversations"]
_messages = Base.metadata.tables["messages"]
_calls = Base.metadata.tables["model_calls"]
_state = Base.metadata.tables["state"]
_reservations = Base.metadata.tables["spend_reservations"]
_summaries = Base.metadata.tables["conversation_summaries"]
_tool_calls = Base.metadata.tables["tool_calls"]
_UPDATABLE = frozenset(_messages.c.keys()) - {"id"}
_JSON_COLUMNS = frozenset({"meta", "attachments", "raw"})


class Store:
    """The conversation store: inbox, outbox, history, usage, state and summaries.

    Every method runs in its own transaction (an operation of ``Database``) and raises
    ``StoreError`` (with the driver's error as its cause) when the database fails.
    """

    def __init__(self, database: Database) -> None:
        self.db = database
        self.leases = LeaseStore(database)  # singleton leases and job runs
        self.jobs = JobStore(database, _write_reply)  # plugins' scheduled jobs
        self._dialect: Any = sqlite if database.sqlite else postgresql
        # conversation key -> id; rows are never deleted or re-keyed, so it never goes stale
        self._conversation_ids: dict[str, int] = {}
        self._unsaved: dict[int, CallRow] = {}
        # the hot statements, built once (building one costs more than running it)
        self._insert_message = self._insert_ignore(
            _messages, ["channel", "direction", "external_id"]
        )
        self._insert_messages = self._insert_message.returning(
            _messages.c.channel, _messages.c.external_id
        )
        self._insert_conversation = self._insert_ignore(_conversations, ["key"])
        self._insert_conversations = self._insert_conversation.returning(_conversations.c.key)

    # -- inbox ---------------------------------------------------------------------------

    async def accept(
        self, message: Message, *, claim: Claim | None = None, skip: str | None = None
    ) -> tuple[Accepted, int]:
        """Store an inbound message once per (channel, external id), in one transaction.

        Args:
            message: the message.
            claim: the accepting process's claim on it, so no other process picks it up
                while this one is alive.
            skip: store it as ``skipped`` with this reason instead of ``pending``: kept
                and visible, never processed.

        Returns:
            What happened, and the id of the message's conversation.
        """
        now = utcnow()
        values = {
            "channel": message.channel,
            "direction": "in",
            "external_id": message.external_id,
            "sender_id": message.sender.id,
            "sender_name": message.sender.name,
            "text": message.text,
            "markup": "plain",
            "status": "pending" if skip is None else "skipped",
            "error": skip,
            "attachments": [_attachment_json(a) for a in message.attachments] or None,
            "meta": _jsonable(dict(message.metadata)) or None,
            "raw": _jsonable(dict(message.raw)) if message.raw is not None else None,
            "attempts": 0,
            "created_at": message.received_at,
            "updated_at": now,
            "claimed_by": claim.owner if claim else None,
            "claimed_until": claim.until if claim else None,
            "claim_token": 1 if claim else 0,
        }

        op = _Accept(self, message.conversation, values)
        accepted, conversation_id = await self._write("accept message", op)
        self._remember(message.conversation, conversation_id)
        return accepted, conversation_id

    async def conversation_id(self, ref: ConversationRef) -> int:
        """The id of the conversation at ``ref``, created when new."""
        found = await self._write(
            "find conversation", lambda conn: self._conversation_id(conn, ref)
        )
        self._remember(ref, found)
        return found

    def _conversation_id(self, conn: Connection, ref: ConversationRef) -> int:
        known = self._conversation_ids.get(ref.key)
        if known is not None:
            return known
        found = conn.execute(_FIND_CONVERSATION, {"b_key": ref.key}).scalar()
        if found is not None:
            return int(found)
        inserted = conn.execute(
            self._insert_conversation, _conversation_row(ref, utcnow())
        ).scalar()
        if inserted is not None:
            return int(inserted)
        found = conn.execute(_FIND_CONVERSATION, {"b_key": ref.key}).scalar()
        if found is None:  # pragma: no cover
            raise StoreError("conversation vanished while it was being created")
        return int(found)

    def _remember(self, ref: ConversationRef, conversation_id: int) -> None:
        """Cache a conversation's id, once the transaction that found or made it has
        committed (a rolled-back row's id may be given to another conversation)."""
        if len(self._conversation_ids) >= _CONVERSATION_CACHE:
            self._conversation_ids.clear()  # crude bound; refilled on demand
        self._conversation_ids[ref.key] = conversation_id

    def _utc_day(self, column: Any) -> Any:
        """SQL for a timestamp's UTC date as YYYY-MM-DD (PostgreSQL would otherwise
        render it in the session's time zone)."""
        if self.db.sqlite:  # stored as UTC text
            return func.substr(func.cast(column, String()), 1, 10)
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")

    def _insert_ignore(self, table: Table, keys: list[str]) -> Any:
        """``INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING id``, values given at run."""
        statement = self._dialect.insert(table)
        return statement.on_conflict_do_nothing(index_elements=keys).returning(table.c.id)

    async def unfinished_inbound(self, *, now: datetime | None = None) -> list[StoredMessage]:
        """Inbound messages accepted but not yet answered, oldest first (crash recovery).

        With ``now``, only those no live process has claimed: unclaimed, or whose claim
        lapsed before ``now``.
        """
        conditions = [_messages.c.direction == "in", _messages.c.status.in_(UNFINISHED_IN)]
        if now is not None:
            conditions.append(self._free(now))
        query = _SNAPSHOT_QUERY.where(*conditions).order_by(_messages.c.id)
        return await self._read("list unfinished messages", _snapshots(query))

    async def claim(
        self,
        ids: Sequence[int],
        claim: Claim,
        *,
        status: str,
        from_statuses: Sequence[str],
        count_attempt: bool = False,
    ) -> Fence:
        """Take messages for processing or delivery, unless another live process holds them.

        A message is taken when its status is one of ``from_statuses`` and it is
        unclaimed, claimed by ``claim.owner`` already, or its claim lapsed (by the
        database's clock). Taking it from anyone but a live claim of ``claim.owner``
        increases its fencing token, so a holder whose claim lapsed can change nothing.

        Returns:
            The messages taken (their status is now ``status``) with their fencing
            tokens, in id order.
        """
        now = utcnow()
        ours = and_(_messages.c.claimed_by == claim.owner, ~self._free(now))
        query = (
            update(_messages)
            .where(
                _messages.c.id.in_(list(ids)),
                _messages.c.status.in_(list(from_statuses)),
                or_(self._free(now), _messages.c.claimed_by == claim.owner),
            )
            .values(
                status=status,
                claimed_by=claim.owner,
                claimed_until=claim.until,
                claim_token=case(
                    (ours, _messages.c.claim_token), else_=_messages.c.claim_token + 1
                ),
                updated_at=now,
                **({"attempts": _messages.c.attempts + 1} if count_attempt else {}),
            )
            .returning(_messages.c.id, _messages.c.claim_token)
        )

        def op(conn: Connection) -> Fence:
            return {int(i): int(t) for i, t in sorted(conn.execute(query).all())}

        return await self._write("claim messages", op)

    async def release_claims(self, owner: str) -> int:
        """Give up every claim ``owner`` holds (a clean stop): the next process to look
        takes the work over at once instead of waiting for the claims to lapse."""
        query = (
            update(_messages)
            .where(_messages.c.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
        return await self._write("release claims", _rowcount(query))

    async def release(self, ids: Sequence[int], owner: str) -> int:
        """Give up ``owner``'s claims on these messages (work it could not finish), so
        the next sweep takes them up again."""
        query = (
            update(_messages)
            .where(_messages.c.id.in_(list(ids)), _messages.c.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
        return await self._write("release claims", _rowcount(query))

    async def release_conversation(self, conversation_id: int, owner: str) -> int:
        """Give up ``owner``'s claims on a conversation's undelivered replies."""
        query = (
            update(_messages)
            .where(
                _messages.c.conversation_id == conversation_id,
                _messages.c.direction == "out",
                _messages.c.claimed_by == owner,
                _messages.c.status.in_(UNDELIVERED_OUT),
            )
            .values(claimed_by=None, claimed_until=None)
        )
        return await self._write("release claims", _rowcount(query))

    async def renew_claims(self, claim: Claim) -> int:
        """Extend every claim ``claim.owner`` holds on unfinished work; returns how many."""
        query = (
            update(_messages)
            .where(
                _messages.c.claimed_by == claim.owner,
                _messages.c.status.in_((*UNFINISHED_IN, *UNDELIVERED_OUT, "streaming")),
            )
            .values(claimed_until=claim.until)
        )
        return await self._write("renew claims", _rowcount(query))

    def _free(self, now: datetime) -> Any:
        """SQL: the row is unclaimed, or its claim lapsed. Judged by the database's clock
        on PostgreSQL (several processes, several clocks); SQLite serves one process, so
        its clock is that process's, ``now``."""
        current: Any = now if self.db.sqlite else func.now()
        return or_(_messages.c.claimed_by.is_(None), _messages.c.claimed_until < current)

    async def database_now(self) -> datetime:
        """The database's clock (the process's own on SQLite): claims are written in it."""
        if self.db.sqlite:
            return utcnow()
        found = await self._read("read the clock", lambda conn: conn.execute(_NOW).scalar())
        if not isinstance(found, datetime):  # pragma: no cover - PostgreSQL's now()
            raise StoreError("the database did not say what time it is")
        return found

    async def resumable_inbound(self, *, now: datetime) -> list[Resumable]:
        """Every unfinished inbound message, in id order, with whether a process may take
        it now (no live claim) and when it is due: the dispatcher takes each
        conversation's messages in order up to the first it may not."""
        free = case((self._free(now), True), else_=False)
        query = (
            select(
                _messages.c.id,
                _messages.c.conversation_id,
                free,
                _messages.c.next_attempt_at,
                _messages.c.claimed_by,
            )
            .where(_messages.c.direction == "in", _messages.c.status.in_(UNFINISHED_IN))
            .order_by(_messages.c.id)
        )

        def op(conn: Connection) -> list[Resumable]:
            return [
                Resumable(int(i), int(c), bool(f), _aware(due), by)
                for i, c, f, due, by in conn.execute(query).all()
            ]

        return await self._read("list unfinished messages", op)

    async def older_unfinished(self, conversation_id: int, before_id: int) -> bool:
        """Whether an inbound message of the conversation older than ``before_id`` is
        still unanswered (held by another process, or waiting for a retry)."""
        params = {"b_conversation_id": conversation_id, "b_before_id": before_id}
        return await self._read(
            "look for older messages",
            lambda conn: conn.execute(_OLDER_UNFINISHED, params).first() is not None,
        )

    async def earlier_replies(self, inbound_ids: Sequence[int]) -> list[StoredMessage]:
        """Replies already posted (or queued, or cut short) for messages that are being
        answered again after their process stopped, oldest first: the new answer takes
        their place, editing what the channel shows."""
        query = _SNAPSHOT_QUERY.where(
            _messages.c.direction == "out",
            _messages.c.reply_to_id.in_(list(inbound_ids)),
            # a stream still marked as being written is one whose writer stopped: the
            # caller holds the message it answers now
            _messages.c.status.in_((*EARLIER_OUT, "streaming")),
        ).order_by(_messages.c.id)
        return await self._read("load earlier replies", _snapshots(query))

    async def postpone(
        self, ids: Sequence[int], claim: Claim, fence: Fence, *, due: datetime, error: str
    ) -> None:
        """Put messages back to ``pending`` until ``due`` (the model or a service is
        down), unclaimed, with the attempt counted and the reason kept.

        Raises:
            ClaimLostError: another process holds one of them now; nothing changed.
        """
        now = utcnow()
        values = {
            "status": "pending",
            "error": error[:2000],
            "next_attempt_at": due,
            "claimed_by": None,
            "claimed_until": None,
            "attempts": _messages.c.attempts + 1,
            "updated_at": now,
        }
        fenced = _fence_params(ids, fence, claim) or []
        statement = _UPDATE_FENCED.values(**values)
        await self._write("postpone messages", lambda conn: _run_fenced(conn, statement, fenced))

    async def messages(self, ids: Sequence[int]) -> list[StoredMessage]:
        """The messages with these ids, in id order."""
        query = _SNAPSHOT_QUERY.where(_messages.c.id.in_(list(ids))).order_by(_messages.c.id)
        return await self._read("load messages", _snapshots(query))

    async def set_inbound_status(
        self, ids: Sequence[int], status: str, *, error: str | None = None
    ) -> None:
        """Move inbound messages to ``status`` (``processing``, ``done``, ``failed``...).

        Back to ``pending`` (a held message released), a message may join its
        conversation's history behind newer turns: the conversation is marked changed
        (``ContextRead.changed_at``), so the turns a process keeps in memory are re-read.
        """
        now = utcnow()
        values = {"status": status, "error": error, "updated_at": now}

        def op(conn: Connection) -> None:
            _set_status(conn, list(ids), values)
            if status == "pending":
                owners = select(_messages.c.conversation_id).where(_messages.c.id.in_(list(ids)))
                conn.execute(
                    update(_conversations)
                    .where(_conversations.c.id.in_(owners.scalar_subquery()))
                    .values(updated_at=now)
                )

        await self._write("update message status", op)

    async def annotate(self, message_id: int, values: dict[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into a message's metadata (a plugin's verdict, a label).

        Returns:
            The metadata after the merge.
        """
        return await self._merge_meta(message_id, values, "annotate message")

    async def rewrite_text(
        self, message_id: int, text: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a message's text (a voice note's transcript) and merge ``values`` into
        its metadata, in one write.

        Returns:
            The metadata after the merge.
        """
        return await self._merge_meta(message_id, values, "rewrite message", text=text)

    async def _merge_meta(
        self, message_id: int, values: dict[str, Any], what: str, *, text: str | None = None
    ) -> dict[str, Any]:
        added = _jsonable(values)
        changed: dict[str, Any] = {} if text is None else {"text": text}

        def op(conn: Connection) -> dict[str, Any]:
            found = conn.execute(
                select(_messages.c.meta).where(_messages.c.id == message_id)
            ).one_or_none()
            if found is None:
                raise StoreError(f"no message {message_id}")
            meta: dict[str, Any] = {**(found[0] or {}), **added}
            conn.execute(
                update(_messages)
                .where(_messages.c.id == message_id)
                .values(meta=meta, updated_at=utcnow(), **changed)
            )
            return meta

        return await self._write(what, op)

    async def finish_inbound(
        self,
        ids: Sequence[int],
        status: str,
        replies: Sequence[OutboundDraft],
        *,
        error: str | None = None,
        claim: Claim | None = None,
        calls: Sequence[CallRow] = (),
        fence: Fence | None = None,
        settles: Sequence[OutboundSettle] = (),
    ) -> Finished:
        """Mark inbound messages finished and queue their replies, in one transaction.

        Either both happen or neither: a crash cannot leave a message answered but not
        marked, or marked but with its reply lost.

        With ``claim``, when nothing earlier of the conversation waits in the outbox, the
        replies are stored already claimed for sending (first attempt counted), so the
        caller can send them at once without another round trip.

        ``calls`` (the model calls made answering it) are stored in the same transaction,
        and ``settles`` made (a streamed reply marked delivered with its whole text, each
        under its own fence).

        With ``fence`` (each message's fencing token, as :meth:`claim` returned it), the
        whole transaction happens only while ``claim.owner`` still holds every message
        with that token.

        Returns:
            The outbox ids of the replies, in order, and whether they are claimed.

        Raises:
            ClaimLostError: a fenced message is held by another process now; nothing
                was stored.
        """
        now = utcnow()
        op = _Finish(
            ids=list(ids),
            done={"status": status, "error": error, "updated_at": now},
            replies=[_reply_row(draft, now) for draft in replies],
            claim=claim,
            calls=[_call_values(call, now) for call in calls],
            fence=_fence_params(ids, fence, claim),
            reservations=_reservations_of(calls),
            settles=list(settles),
        )
        finished = await self._write("finish message", op)
        self.forget_unsaved(calls)
        return finished

    # -- outbox --------------------------------------------------------------------------

    async def add_outbound(
        self,
        draft: OutboundDraft,
        *,
        claim: Claim | None = None,
        held: tuple[str, Fence] | None = None,
    ) -> int:
        """Queue one reply in the outbox (claimed by ``claim``, if given); returns its id.

        ``held``: (owner, fence) of the messages the reply answers: it is stored only
        while ``owner`` still holds every one of them, unfinished, with its token (on
        PostgreSQL their rows stay locked until the reply is committed, so a take-over
        waits for it and then finds it among the earlier replies to edit).

        Raises:
            ClaimLostError: another process holds one of the messages now, or it was
                finished; nothing was stored.
        """
        row = _reply_row(draft, utcnow())
        holds = _held_params(held)

        def op(conn: Connection) -> int:
            _run_fenced(conn, _STILL_HELD, holds)
            return _add_outbound(conn, row, claim)

        return await self._write("queue reply", op)

    async def pending_outbound(self, conversation_id: int) -> list[StoredMessage]:
        """Undelivered replies of one conversation, oldest first."""
        query = _SNAPSHOT_QUERY.where(
            _messages.c.conversation_id == conversation_id,
            _messages.c.direction == "out",
            _messages.c.status.in_(UNDELIVERED_OUT),
        ).order_by(_messages.c.id)
        return await self._read("list outbox", _snapshots(query))

    async def conversations_with_undelivered(
        self, *, now: datetime | None = None, owner: str | None = None
    ) -> list[int]:
        """Conversations that have replies waiting in the outbox (crash recovery).

        With ``now``, only those with a reply that is due (no later retry time) and that
        no live process has claimed (but ``owner``, who may have left it behind).
        """
        conditions = [_messages.c.direction == "out", _messages.c.status.in_(UNDELIVERED_OUT)]
        if now is not None:
            free = self._free(now)
            conditions.append(or_(free, _messages.c.claimed_by == owner) if owner else free)
            conditions.append(
                or_(_messages.c.next_attempt_at.is_(None), _messages.c.next_attempt_at <= now)
            )
        query = select(_messages.c.conversation_id).where(*conditions).distinct()
        found = await self._read(
            "list outbox", lambda conn: [int(i) for i in conn.execute(query).scalars()]
        )
        return sorted(found)

    async def interrupt_streams(
        self, *, owner: str | None = None, live: Collection[int] = ()
    ) -> int:
        """Mark replies that were streaming when their process died (their claim lapsed)
        as ``interrupted``: what they show stays recorded, so the new answer to their
        message edits the same channel message instead of posting another.

        Args:
            owner: this process: its own streaming replies count as interrupted too,
                except those in ``live`` (being written now).
            live: ids of the replies ``owner`` is streaming now.
        """
        mine = and_(_messages.c.claimed_by == owner, _messages.c.id.notin_(list(live)))
        query = (
            update(_messages)
            .where(
                _messages.c.direction == "out",
                _messages.c.status == "streaming",
                or_(self._free(utcnow()), mine) if owner is not None else self._free(utcnow()),
            )
            .values(
                status="interrupted",
                error="interrupted: its process stopped",
                claimed_by=None,
                claimed_until=None,
                updated_at=utcnow(),
            )
        )
        return await self._write("close interrupted streams", _rowcount(query))

    async def update_outbound(
        self, outbound_id: int, *, fence: tuple[str, int] | None = None, **values: Any
    ) -> None:
        """Set delivery fields of an outbox entry (status, attempts, external id...).

        Args:
            outbound_id: the entry.
            fence: ``(owner, token)``: change it only while that claim holds it.
            values: the columns to set.

        Raises:
            ClaimLostError: fenced, and another process holds the entry now.
        """
        if fence is None:
            await self._write("update outbox", _Update(_update_params(outbound_id, values)))
            return
        params = settle_outbound(outbound_id, fence, **values)
        await self._write(
            "update outbox", lambda conn: _run_fenced(conn, _UPDATE_FENCED, [params])
        )

    async def retry_failed_reply(self, outbound_id: int) -> int | None:
        """Give a reply the outbox gave up on a fresh set of attempts: back to
        ``pending``, unclaimed, due now (a person asked, from the operations page).

        Returns:
            Its conversation's id, to flush; ``None`` when it is not a failed reply (it
            was retried already, or never failed), and nothing changed.
        """
        m = _messages.c
        query = (
            update(_messages)
            .where(m.id == outbound_id, m.direction == "out", m.status == "failed")
            .values(
                status="pending",
                attempts=0,
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
                updated_at=utcnow(),
            )
            .returning(m.conversation_id)
        )
        found = await self._write("retry a reply", lambda conn: conn.execute(query).scalar())
        return None if found is None else int(found)

    # -- history -------------------------------------------------------------------------

    async def history(
        self, conversation_id: int, *, before_id: int | None, limit: int, after_id: int = 0
    ) -> list[StoredMessage]:
        """The newest ``limit`` turns of a conversation, oldest first.

        Only inbound messages that were handled and replies that were produced count;
        turns before the last ``/reset`` and at or before ``after_id`` are left out. Reads
        at most ``limit`` rows through the (conversation, id) index, however long the
        conversation is.
        """

        def op(conn: Connection) -> list[StoredMessage]:
            start = conn.execute(
                select(_conversations.c.history_start_id).where(
                    _conversations.c.id == conversation_id
                )
            ).scalar()
            return _history_rows(
                conn, conversation_id, max(start or 0, after_id), before_id, limit
            )

        return await self._read("load history", op)

    async def conversation_context(
        self, conversation_id: int, *, before_id: int | None, limit: int
    ) -> tuple[tuple[str, int] | None, list[StoredMessage]]:
        """The running summary and the newest turns it does not cover, in one read.

        Returns:
            ``(summary text, newest id it covers)`` or ``None``, and the turns after it
            (as :meth:`history`, at most ``limit``).
        """
        read = await self.recent_turns(conversation_id, before_id=before_id, limit=limit)
        return read.summary, read.turns

    async def recent_turns(
        self, conversation_id: int, *, before_id: int | None, limit: int, after_id: int = 0
    ) -> ContextRead:
        """Where history starts, the running summary, and the newest ``limit`` turns
        after both (and after ``after_id``), in one read: with ``after_id`` only the
        turns since then are read, however long the conversation is."""
        return await self._read(
            "load conversation", _Context(conversation_id, before_id, limit, after_id)
        )

    async def chat_messages_since(
        self, channel: str, chat_id: str, *, since: datetime, limit: int
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of every conversation in one chat since
        ``since``, oldest first: all threads of a mailbox, all topics of a group (for a
        digest). Failed replies are left out."""
        query = (
            _SNAPSHOT_QUERY.where(
                _conversations.c.channel == channel,
                _conversations.c.chat_id == chat_id,
                _messages.c.created_at >= since,
                _messages.c.status != "failed",
            )
            .order_by(_messages.c.id.desc())
            .limit(limit)
        )
        rows = await self._read("load chat messages", _snapshots(query))
        return rows[::-1]

    async def transcript(self, ref: ConversationRef, *, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages of one conversation as its channel shows them,
        oldest first: every inbound message, whatever became of it, and every reply but
        those that failed (a channel that keeps no history of its own, the web chat,
        shows this). Reads through the conversation's unique key and the
        (conversation, id) index."""
        query = (
            _SNAPSHOT_QUERY.where(
                _conversations.c.key == ref.key,
                or_(_messages.c.direction == "in", _messages.c.status != "failed"),
            )
            .order_by(_messages.c.id.desc())
            .limit(limit)
        )
        rows = await self._read("load transcript", _snapshots(query))
        return rows[::-1]

    async def annotation_counts(
        self, key: str, *, since: datetime | None = None
    ) -> list[tuple[str, str, str, int]]:
        """How often each value of one annotation (``sentiment``, ``spam``...) was
        stored with inbound messages: ``(day, channel, value, count)``, newest day first."""
        value = _messages.c.meta[key].as_string()
        day = self._utc_day(_messages.c.created_at)
        query = (
            select(day.label("day"), _messages.c.channel, value.label("value"), func.count())
            .where(_messages.c.direction == "in", value.is_not(None))
            .group_by("day", _messages.c.channel, "value")
            .order_by(day.desc(), _messages.c.channel, "value")
        )
        if since is not None:
            query = query.where(_messages.c.created_at >= since)

        def op(conn: Connection) -> list[tuple[str, str, str, int]]:
            return [(str(d), c, str(v), int(n)) for d, c, v, n in conn.execute(query).all()]

        return await self._read("count annotations", op)

    async def reset_conversation(self, conversation_id: int, *, through_id: int) -> None:
        """Start the conversation afresh: history begins after message ``through_id``."""

        def op(conn: Connection) -> None:
            conn.execute(
                update(_conversations)
                .where(_conversations.c.id == conversation_id)
                .values(history_start_id=through_id, updated_at=utcnow())
            )
            conn.execute(delete(_summaries).where(_summaries.c.conversation_id == conversation_id))

        await self._write("reset conversation", op)

    async def summary(self, conversation_id: int) -> tuple[str, int] | None:
        """The running summary and the newest message id it covers, if there is one."""
        query = select(_summaries.c.text, _summaries.c.covers_through_id).where(
            _summaries.c.conversation_id == conversation_id
        )

        def op(conn: Connection) -> tuple[str, int] | None:
            row = conn.execute(query).first()
            return None if row is None else (str(row[0]), int(row[1]))

        return await self._read("load summary", op)

    async def save_summary(self, conversation_id: int, text: str, covers_through_id: int) -> None:
        """Replace the running summary of a conversation."""
        values = {"text": text, "covers_through_id": covers_through_id, "updated_at": utcnow()}
        query = (
            self._dialect.insert(_summaries)
            .values(conversation_id=conversation_id, **values)
            .on_conflict_do_update(index_elements=["conversation_id"], set_=values)
        )
        await self._write("save summary", lambda conn: conn.execute(query))

    # -- usage ---------------------------------------------------------------------------

    async def record_call(self, call: CallRow) -> None:
        """Store one model call with its usage and cost."""
        await self.record_calls([call])

    async def finished_under(self, owner: str, fence: Fence) -> bool:
        """Whether every one of these messages was finished while ``owner`` held it with
        its token (a finish keeps the claim it was made under): after a finish whose
        commit went unheard, whether it landed."""
        query = select(
            _messages.c.id, _messages.c.claimed_by, _messages.c.claim_token, _messages.c.status
        ).where(_messages.c.id.in_(list(fence)))

        def op(conn: Connection) -> bool:
            rows = conn.execute(query).all()
            return len(rows) == len(fence) and all(
                by == owner and token == fence[int(i)] and status not in UNFINISHED_IN
                for i, by, token, status in rows
            )

        return await self._read("check a finish", op)

    async def record_calls(self, calls: Sequence[CallRow]) -> None:
        """Store model calls with their usage and cost, in one transaction."""
        if not calls:
            return
        now = utcnow()
        values = [_call_values(call, now) for call in calls]
        held = _reservations_of(calls)

        def op(conn: Connection) -> None:
            conn.execute(_INSERT_CALL, values)
            _drop_reservations(conn, held)

        await self._write("record model calls", op)
        self.forget_unsaved(calls)

    def note_unsaved(self, call: CallRow) -> None:
        """A model call made but stored later (with its message's outcome): until then
        :meth:`spend` counts it from memory, so budgets see it."""
        self._unsaved[id(call)] = call

    def forget_unsaved(self, calls: Sequence[CallRow]) -> None:
        """The calls were stored (or given up on): stop counting them from memory."""
        for call in calls:
            self._unsaved.pop(id(call), None)

    async def usage(self, *, since: datetime | None = None) -> list[UsageRow]:
        """Spend and tokens grouped by day, model, channel and user, newest day first."""
        calls = _calls.c
        day = self._utc_day(calls.created_at)
        query = select(
            day.label("day"),
            calls.model,
            func.coalesce(calls.channel, "").label("channel"),
            func.coalesce(calls.user_id, "").label("user"),
            func.count(calls.id),
            func.coalesce(func.sum(calls.prompt_tokens), 0),
            func.coalesce(func.sum(calls.completion_tokens), 0),
            func.coalesce(func.sum(calls.cost_nanos), 0),
            func.sum(func.cast(and_(calls.cost_nanos.is_(None), calls.ok.is_(True)), Integer())),
            func.sum(func.cast(calls.usage_estimated, Integer())),
        ).group_by("day", calls.model, "channel", "user")
        if since is not None:
            query = query.where(calls.created_at >= since)
        query = query.order_by(day.desc(), calls.model)

        def op(conn: Connection) -> list[UsageRow]:
            return [
                UsageRow(
                    str(d),
                    m,
                    c,
                    u,
                    int(n),
                    int(p),
                    int(o),
                    int(cost),
                    int(unpriced or 0),
                    int(estimated or 0),
                )
                for d, m, c, u, n, p, o, cost, unpriced, estimated in conn.execute(query).all()
            ]

        return await self._read("usage report", op)

    async def spend(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        channel: str | None = None,
        before_reservation: int | None = None,
    ) -> tuple[int, int]:
        """Tokens (prompt + completion) and nano-dollars spent since ``since``.

        Narrowed to one user and/or channel when given; for budgets checked before each
        model call. Calls being made count too, through their spend reservations (only
        those made before ``before_reservation``, the caller's own, when given).
        """
        calls = _calls.c
        query = select(
            func.coalesce(func.sum(calls.prompt_tokens + calls.completion_tokens), 0),
            func.coalesce(func.sum(calls.cost_nanos), 0),
        ).where(calls.created_at >= since)
        if user_id is not None:
            query = query.where(calls.user_id == user_id)
        if channel is not None:
            query = query.where(calls.channel == channel)
        held = _reservations.c
        reserved = select(
            func.coalesce(func.sum(held.tokens), 0), func.coalesce(func.sum(held.cost_nanos), 0)
        ).where(held.created_at >= since, held.expires_at > utcnow())
        if user_id is not None:
            reserved = reserved.where(held.user_id == user_id)
        if channel is not None:
            reserved = reserved.where(held.channel == channel)
        if before_reservation is not None:
            reserved = reserved.where(held.id < before_reservation)

        def op(conn: Connection) -> tuple[int, int]:
            stored_tokens, stored_cost = conn.execute(query).one()
            held_tokens, held_cost = conn.execute(reserved).one()
            tokens = int(stored_tokens or 0) + int(held_tokens or 0)
            return tokens, int(stored_cost or 0) + int(held_cost or 0)

        tokens, cost = await self._read("sum spend", op)
        for call in self._unsaved.values():  # made just now, stored with their message later
            if (user_id is None or call.user_id == user_id) and (
                channel is None or call.channel == channel
            ):
                tokens += (call.prompt_tokens or 0) + (call.completion_tokens or 0)
                cost += call.cost_nanos or 0
        return tokens, cost

    async def reserve(
        self,
        *,
        model: str,
        tokens: int,
        cost_nanos: int | None,
        channel: str | None,
        user_id: str | None,
        ttl: float,
    ) -> int:
        """Hold a call's worst-case cost against the budgets before it is made; returns
        the reservation's id. Reservations are numbered in the order they commit (on
        PostgreSQL under a transaction lock), so a budget check that counts those made
        before its own sees every one of them."""
        now = utcnow()
        values = {
            "model": model,
            "tokens": tokens,
            "cost_nanos": cost_nanos,
            "channel": channel,
            "user_id": user_id,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl),
        }
        sqlite = self.db.sqlite

        def op(conn: Connection) -> int:
            if not sqlite:
                conn.execute(_RESERVATION_LOCK)
            return int(conn.execute(_INSERT_RESERVATION, values).scalar_one())

        return await self._write("reserve spend", op)

    async def settle_reservation(
        self, reservation_id: int, *, tokens: int, cost_nanos: int | None
    ) -> None:
        """The call was made: its reservation holds the real usage until it is stored."""
        query = (
            update(_reservations)
            .where(_reservations.c.id == reservation_id)
            .values(tokens=tokens, cost_nanos=cost_nanos)
        )
        await self._write("settle reservation", lambda conn: conn.execute(query))

    async def release_reservation(self, reservation_id: int) -> None:
        """The call was not made (refused, or failed without usage): drop its hold."""
        query = delete(_reservations).where(_reservations.c.id == reservation_id)
        await self._write("release reservation", lambda conn: conn.execute(query))

    # -- tool calls ----------------------------------------------------------------------

    async def start_tool_call(
        self, call: ToolCallRecord, *, held: tuple[str, Fence] | None = None
    ) -> int:
        """Store a tool call before it runs (or, with its status and result, one answered
        without running a tool), while the messages it answers are still held.

        Args:
            call: the call; ``status`` "running" for one about to run.
            held: (owner, fence) of the messages being answered: the call is stored only
                while ``owner`` still holds every one of them, unfinished, with its token.

        Returns:
            The stored row's id.

        Raises:
            ClaimLostError: another process holds the messages now, or they were
                finished: nothing was stored, and the tool must not run.
        """
        row = {
            "message_id": call.message_id,
            "round": call.round,
            "call_id": call.call_id[:255],
            "name": call.name[:128],
            "arguments": call.arguments,
            "said": call.said,
            "status": call.status,
            "result": call.result,
            "created_at": utcnow(),
            "finished_at": None if call.status == "running" else utcnow(),
        }
        holds = _held_params(held)

        def op(conn: Connection) -> int:
            _run_fenced(conn, _STILL_HELD, holds)
            return int(conn.execute(_INSERT_TOOL_CALL, row).scalar_one())

        return await self._write("store a tool call", op)

    async def finish_tool_call(self, call_id: int, status: str, result: str) -> None:
        """Store how a running tool call ended (``"done"``, ``"failed"``, ``"skipped"``)
        and what the model is told. Not fenced: the tool ran, whoever holds the message
        now is better off knowing what it did."""
        query = (
            update(_tool_calls)
            .where(_tool_calls.c.id == call_id)
            .values(status=status, result=result, finished_at=utcnow())
        )
        await self._write("store a tool result", lambda conn: conn.execute(query))

    async def tool_calls(self, message_ids: Sequence[int]) -> list[ToolCallRecord]:
        """The tool calls stored while answering these messages, in the order they were
        made."""
        query = (
            select(_tool_calls)
            .where(_tool_calls.c.message_id.in_(list(message_ids)))
            .order_by(_tool_calls.c.id)
        )

        def op(conn: Connection) -> list[ToolCallRecord]:
            return [
                ToolCallRecord(
                    message_id=r.message_id,
                    round=r.round,
                    call_id=r.call_id,
                    name=r.name,
                    arguments=r.arguments,
                    said=r.said,
                    status=r.status,
                    result=r.result,
                    id=r.id,
                )
                for r in conn.execute(query)
            ]

        return await self._read("load tool calls", op)

    # -- state ---------------------------------------------------------------------------

    def state(self, namespace: str) -> NamespaceState:
        """The persisted key-value state of one plugin or adapter."""
        return NamespaceState(self, namespace)

    async def get_state(self, namespace: str, key: str) -> tuple[bool, Any]:
        """Whether ``key`` is set in ``namespace``, and its value."""
        query = select(_state.c.value).where(_state.c.namespace == namespace, _state.c.key == key)

        def op(conn: Connection) -> tuple[bool, Any]:
            row = conn.execute(query).first()
            return (False, None) if row is None else (True, row[0])

        return await self._read("read state", op)

    async def state_keys(self, namespace: str, prefix: str = "") -> list[str]:
        """The keys set in ``namespace`` that start with ``prefix``, sorted (a plugin's
        learners, say, each stored under a key of its own)."""
        query = select(_state.c.key).where(_state.c.namespace == namespace)
        if prefix:
            query = query.where(_state.c.key.startswith(prefix, autoescape=True))
        query = query.order_by(_state.c.key)

        def op(conn: Connection) -> list[str]:
            return [str(key) for key in conn.execute(query).scalars()]

        return await self._read("list state keys", op)

    async def set_state(
        self, namespace: str, key: str, value: Any, *, held: tuple[str, Fence] | None = None
    ) -> None:
        """Store a JSON-serialisable value; with ``held``, only while those messages are
        still held (as ``add_outbound``), else ``ClaimLostError`` and nothing stored."""
        try:  # a snapshot, taken here: the caller keeps its own object
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"could not write state: the value is not JSON ({exc})") from exc
        now = utcnow()
        query = (
            self._dialect.insert(_state)
            .values(namespace=namespace, key=key, value=value, updated_at=now)
            .on_conflict_do_update(
                index_elements=["namespace", "key"], set_={"value": value, "updated_at": now}
            )
        )
        holds = _held_params(held)

        def op(conn: Connection) -> None:
            _run_fenced(conn, _STILL_HELD, holds)
            conn.execute(query)

        await self._write("write state", op)

    async def delete_state(self, namespace: str, key: str) -> None:
        """Forget a key; no error when it was not set."""
        query = delete(_state).where(_state.c.namespace == namespace, _state.c.key == key)
        await self._write("delete state", lambda conn: conn.execute(query))

    # -- plumbing ------------------------------------------------------------------------

    async def _read(self, what: str, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in a read transaction; a driver error becomes a ``StoreError``."""
        try:
            return await self.db.read(op)
        except (SQLAlchemyError, OSError) as exc:
            raise _store_error(what, exc) from exc

    async def _write(self, what: str, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in a (group-committed, on SQLite) write transaction."""
        try:
            return await self.db.write(op)
        except (SQLAlchemyError, OSError) as exc:
            raise _store_error(what, exc) from exc


@dataclasses.dataclass(frozen=True, slots=True)
class _Accept:
    """Store one inbound message (the write behind ``Store.accept``); a burst of them
    runs together in a few multi-row statements."""

    store: Store
    ref: ConversationRef
    values: dict[str, Any]  # the message's row, less its conversation

    def __call__(self, conn: Connection) -> tuple[Accepted, int]:
        conversation_id = self.store._conversation_id(conn, self.ref)
        inserted = conn.execute(
            self.store._insert_message, {**self.values, "conversation_id": conversation_id}
        ).scalar()
        if inserted is not None:
            return Accepted(message_id=int(inserted), duplicate=False), conversation_id
        return Accepted(message_id=self._existing(conn), duplicate=True), conversation_id

    def _existing(self, conn: Connection) -> int:
        found = conn.execute(
            _FIND_MESSAGE,
            {"b_channel": self.values["channel"], "b_external_id": self.values["external_id"]},
        ).scalar()
        if found is None:  # pragma: no cover - the insert only skips on conflict
            raise StoreError("a duplicate message vanished while it was being accepted")
        return int(found)

    @staticmethod
    def together(conn: Connection, ops: list[_Accept]) -> list[tuple[Accepted, int]]:
        store = ops[0].store
        conversations = _conversation_ids(conn, store, [op.ref for op in ops])
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for op in ops:  # a message twice in one burst is stored once
            key = (op.values["channel"], op.values["external_id"])
            rows.setdefault(key, {**op.values, "conversation_id": conversations[op.ref.key]})
        inserted = {
            (channel, external_id): int(id_)
            for id_, channel, external_id in conn.execute(
                store._insert_messages, list(rows.values())
            ).all()
        }
        results = []
        for op in ops:
            key = (op.values["channel"], op.values["external_id"])
            new = inserted.pop(key, None)  # the first of a key takes it
            accepted = (
                Accepted(message_id=new, duplicate=False)
                if new is not None
                else Accepted(message_id=op._existing(conn), duplicate=True)
            )
            results.append((accepted, conversations[op.ref.key]))
        return results


@dataclasses.dataclass(frozen=True, slots=True)
class _Finish:
    """Finish inbound messages (the write behind ``Store.finish_inbound``); a burst of
    them runs together: one INSERT of all their model calls, one look for replies
    waiting, one UPDATE of all their statuses."""

    ids: list[int]
    done: dict[str, Any]  # status, error, updated_at
    replies: list[dict[str, Any]]  # rows, see _reply_row
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
            conn.execute(_INSERT_CALL, self.calls)
            _drop_reservations(conn, self.reservations)
        claimed = False
        if self.claim is not None and self.replies:
            waiting = conn.execute(_WAITING_REPLIES, {"b_ids": sorted(self.conversations)})
            claimed = waiting.first() is None
        out_ids = self._add_replies(conn, claimed)
        for settle in self.settles:
            _run_fenced(conn, _UPDATE_FENCED, [settle])
        _set_done(conn, [self])
        return Finished(out_ids, claimed)

    def _add_replies(self, conn: Connection, claimed: bool) -> list[int]:
        claim = self.claim if claimed else None
        return [_add_outbound(conn, row, claim) for row in self.replies]

    @staticmethod
    def together(conn: Connection, ops: list[_Finish]) -> list[Finished]:
        # one conversation twice: the second waits for the first's replies, so the burst
        # is cut there and the parts run one after the other
        parts: list[list[_Finish]] = [[]]
        answering: set[int] = set()
        for op in ops:
            conversations = op.conversations
            if conversations & answering:
                parts.append([])
                answering.clear()
            parts[-1].append(op)
            answering |= conversations
        return [result for part in parts for result in _Finish._all(conn, part)]

    @staticmethod
    def _all(conn: Connection, ops: list[_Finish]) -> list[Finished]:
        """Finish ``ops``, no two of which reply in the same conversation."""
        calls = [values for op in ops for values in op.calls]
        if calls:
            conn.execute(_INSERT_CALL, calls)
            _drop_reservations(conn, [r for op in ops for r in op.reservations])
        asking = sorted({c for op in ops if op.claim is not None for c in op.conversations})
        waiting: set[int] = set()
        for chunk in _chunks(asking):
            waiting.update(conn.execute(_WAITING_REPLIES, {"b_ids": chunk}).scalars())
        claimed = [
            op.claim is not None and bool(op.replies) and not op.conversations & waiting
            for op in ops
        ]
        rows = [
            _outbound_values(row, op.claim if mine else None)
            for op, mine in zip(ops, claimed, strict=True)
            for row in op.replies
        ]
        # multi-row INSERT ... RETURNING: the rows take consecutive ids in the order given
        # (a new rowid is one more than the largest, and only this transaction writes),
        # so the ids sorted are the rows' ids in order
        inserted = sorted(conn.execute(_INSERT_REPLY, rows).scalars().all()) if rows else []
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
            _run_fenced(conn, _UPDATE_FENCED, [settle])
        _set_done(conn, ops)
        return results


def _set_done(conn: Connection, ops: list[_Finish]) -> None:
    """The finished messages' new statuses: one UPDATE ... WHERE id IN (...) for each
    outcome (status and error), stamped with the latest time among them; or, when a
    message is finished twice in the burst, one UPDATE per row in queue order (the last
    one wins, as one by one). A fenced finish updates its rows one by one, each only
    under its holder's token."""
    fenced = [op for op in ops if op.fence is not None]
    for op in fenced:
        assert op.fence is not None
        _run_fenced(conn, _FINISH_FENCED, [{**op.done, **f} for f in op.fence])
    ops = [op for op in ops if op.fence is None]
    every = [i for op in ops for i in op.ids]
    if len(set(every)) < len(every):
        conn.execute(_UPDATE_MESSAGE, [{**op.done, "b_id": i} for op in ops for i in op.ids])
        return
    outcomes: dict[tuple[Any, Any], tuple[datetime, list[int]]] = {}
    for op in ops:
        key = (op.done["status"], op.done["error"])
        when, ids = outcomes.get(key, (op.done["updated_at"], []))
        ids.extend(op.ids)
        outcomes[key] = (max(when, op.done["updated_at"]), ids)
    for (status, error), (when, ids) in outcomes.items():
        _set_status(conn, ids, {"status": status, "error": error, "updated_at": when})


def _set_status(conn: Connection, ids: list[int], values: dict[str, Any]) -> None:
    """Set ``values`` (status, error, updated_at) on the messages ``ids``."""
    if len(ids) == 1:  # the usual case: no IN list to render
        conn.execute(_UPDATE_MESSAGE, {**values, "b_id": ids[0]})
        return
    for chunk in _chunks(ids):
        conn.execute(_SET_STATUS, {**values, "b_ids": chunk})


@dataclasses.dataclass(frozen=True, slots=True)
class _Update:
    """Set columns of one message (``Store.update_outbound``); a burst of delivery marks
    runs as one UPDATE executed for many rows."""

    params: dict[str, Any]  # the columns to set, and ``b_id``

    def __call__(self, conn: Connection) -> None:
        conn.execute(_UPDATE_MESSAGE, self.params)

    @staticmethod
    def together(conn: Connection, ops: list[_Update]) -> list[None]:
        ids = [op.params["b_id"] for op in ops]
        shapes = {frozenset(op.params) for op in ops}
        if len(set(ids)) < len(ids) or len(shapes) > 1:  # keep the order that matters
            for op in ops:
                op(conn)
        else:
            conn.execute(_UPDATE_MESSAGE, [op.params for op in ops])
        return [None] * len(ops)


_NO_CONVERSATION = (0, None, None, None)


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    """Read a conversation's running summary and newest turns
    (``Store.conversation_context``); reads of many conversations at once share one
    query for their summaries."""

    conversation_id: int
    before_id: int | None
    limit: int
    after_id: int = 0

    def __call__(self, conn: Connection) -> ContextRead:
        found = conn.execute(_CONTEXT, {"b_conversation_id": self.conversation_id}).first()
        return self._turns(conn, tuple(found) if found is not None else _NO_CONVERSATION)

    def _turns(self, conn: Connection, found: tuple[Any, ...]) -> ContextRead:
        start, changed, text, covers = found
        summary = (text, int(covers)) if text is not None and covers is not None else None
        after = max(start or 0, summary[1] if summary else 0, self.after_id)
        rows = _history_rows(conn, self.conversation_id, after, self.before_id, self.limit)
        return ContextRead(int(start or 0), summary, rows, _aware(changed))

    @staticmethod
    def together(conn: Connection, ops: list[_Context]) -> list[ContextRead]:
        wanted = sorted({op.conversation_id for op in ops})
        found: dict[int, tuple[Any, ...]] = {}
        for chunk in _chunks(wanted):
            for id_, *rest in conn.execute(_CONTEXTS, {"b_ids": chunk}).all():
                found[int(id_)] = tuple(rest)
        return [op._turns(conn, found.get(op.conversation_id, _NO_CONVERSATION)) for op in ops]


def _conversation_row(ref: ConversationRef, now: datetime) -> dict[str, Any]:
    return {
        "key": ref.key,
        "channel": ref.channel,
        "chat_id": ref.chat_id,
        "thread_id": ref.thread_id,
        "history_start_id": 0,
        "created_at": now,
        "updated_at": now,
    }


def _chunks(values: list[T]) -> list[list[T]]:
    """``values`` cut to fit one IN (...) each, bounding a statement's parameters."""
    return [values[i : i + _IN_CHUNK] for i in range(0, len(values), _IN_CHUNK)]


def _conversation_ids(
    conn: Connection, store: Store, refs: list[ConversationRef]
) -> dict[str, int]:
    """The ids of these conversations by key, creating the new ones (multi-row)."""
    found: dict[str, int] = {}
    for ref in refs:
        known = store._conversation_ids.get(ref.key)  # the loop's thread may clear it meanwhile
        if known is not None:
            found[ref.key] = known
    missing = {r.key: r for r in refs if r.key not in found}
    for chunk in _chunks(list(missing)):
        query = select(_conversations.c.id, _conversations.c.key).where(
            _conversations.c.key.in_(chunk)
        )
        found.update((key, int(id_)) for id_, key in conn.execute(query).all())
    new = [ref for key, ref in missing.items() if key not in found]
    if new:
        now = utcnow()
        rows = [_conversation_row(ref, now) for ref in new]
        found.update(
            (key, int(id_)) for id_, key in conn.execute(store._insert_conversations, rows).all()
        )
        for ref in new:  # made meanwhile by another process: read it
            if ref.key not in found:
                found[ref.key] = store._conversation_id(conn, ref)
    return found


def _one_of(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (values)`` for a prebuilt statement: written as ORs of plain bound
    parameters, because SQLAlchemy renders an IN list anew at every execution."""
    return or_(*(column == value for value in values))


def _history_query(*, bounded: bool) -> Select[Any]:
    """The newest turns of a conversation after one id (and before another, if
    ``bounded``), newest first, through the (conversation, id) index."""
    conditions = [
        _messages.c.conversation_id == bindparam("b_conversation_id"),
        _messages.c.id > bindparam("b_after_id"),
        or_(
            and_(_messages.c.direction == "in", _one_of(_messages.c.status, HISTORY_IN)),
            and_(
                _messages.c.direction == "out",
                _messages.c.status != "failed",
                _messages.c.status != "interrupted",
            ),
        ),
    ]
    if bounded:
        conditions.append(_messages.c.id < bindparam("b_before_id"))
    return (
        _SNAPSHOT_QUERY.where(*conditions)
        .order_by(_messages.c.id.desc())
        .limit(bindparam("b_limit", type_=Integer()))
    )


def _history_rows(
    conn: Connection, conversation_id: int, after_id: int, before_id: int | None, limit: int
) -> list[StoredMessage]:
    params = {"b_conversation_id": conversation_id, "b_after_id": after_id, "b_limit": limit}
    if before_id is None:
        rows = conn.execute(_HISTORY, params).all()
    else:
        rows = conn.execute(_HISTORY_BEFORE, {**params, "b_before_id": before_id}).all()
    return [_snapshot(r) for r in reversed(rows)]


def _snapshots(query: Select[Any]) -> Callable[[Connection], list[StoredMessage]]:
    """An operation reading ``query`` (over ``_SNAPSHOT_QUERY``) as snapshots."""
    return lambda conn: [_snapshot(r) for r in conn.execute(query).all()]


def _rowcount(query: Any) -> Callable[[Connection], int]:
    """An operation running an UPDATE or DELETE and saying how many rows it touched."""
    return lambda conn: int(getattr(conn.execute(query), "rowcount", 0) or 0)


def _reply_row(draft: OutboundDraft, now: datetime) -> dict[str, Any]:
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
        "meta": _jsonable(dict(draft.meta)) or None,
        "created_at": now,
        "updated_at": now,
    }


def _outbound_values(row: dict[str, Any], claim: Claim | None) -> dict[str, Any]:
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


def _add_outbound(conn: Connection, row: dict[str, Any], claim: Claim | None) -> int:
    inserted = conn.execute(_INSERT_REPLY, _outbound_values(row, claim)).scalar()
    if inserted is None:  # pragma: no cover - an insert always returns its id
        raise StoreError("the reply was not stored")
    return int(inserted)


def _write_reply(conn: Connection, draft: OutboundDraft) -> int:
    """Queue one reply on ``conn`` (a scheduled job's, stored with its completion)."""
    return _add_outbound(conn, _reply_row(draft, utcnow()), None)


def _call_values(call: CallRow, now: datetime) -> dict[str, Any]:
    # not dataclasses.asdict: it deep-copies every field, several times slower
    values = {name: getattr(call, name) for name in _CALL_FIELDS}
    values["created_at"] = now
    return values


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    """What :meth:`Store.finish_inbound` stored: reply ids, and whether they are claimed."""

    out_ids: list[int]
    claimed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A process's claim on work: who, and until when unless renewed."""

    owner: str
    until: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Resumable:
    """An unfinished inbound message as the dispatcher's sweep sees it."""

    id: int
    conversation_id: int
    free: bool  # no live process holds it
    due: datetime | None  # not to be tried before this (a postponed message)
    claimed_by: str | None = None


def _aware(value: datetime | None) -> datetime | None:
    """A timestamp read without the column type's conversion, made UTC-aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


Fence = dict[int, int]
"""Fencing tokens of claimed rows, by row id (see :meth:`Store.claim`)."""


def _fence_params(
    ids: Sequence[int], fence: Fence | None, claim: Claim | None
) -> list[dict[str, Any]] | None:
    if fence is None:
        return None
    if claim is None:
        raise ValueError("a fenced write needs the claim of its owner")
    return [{"b_id": i, "b_owner": claim.owner, "b_token": fence[i]} for i in ids]


def _held_params(held: tuple[str, Fence] | None) -> list[dict[str, Any]]:
    """The ``_STILL_HELD`` parameters for (owner, fence): one per message; none unfenced."""
    if held is None:
        return []
    owner, fence = held
    return [{"b_id": i, "b_owner": owner, "b_token": t} for i, t in fence.items()]


OutboundSettle = dict[str, Any]
"""A fenced change of an outbox entry, made with a message's finish (``settle_outbound``)."""


def _update_params(outbound_id: int, values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - _UPDATABLE)
    if unknown:
        raise StoreError(f"messages have no column {', '.join(unknown)} to update")
    params = {**values, "updated_at": utcnow(), "b_id": outbound_id}
    for column in _JSON_COLUMNS & set(values):  # a snapshot: the caller keeps its own
        params[column] = _jsonable(values[column])
    return params


def settle_outbound(outbound_id: int, fence: tuple[str, int], **values: Any) -> OutboundSettle:
    """The change ``Store.update_outbound(outbound_id, fence=fence, **values)`` makes, to
    be made later in another write (``finish_inbound(settles=...)``)."""
    return _update_params(outbound_id, values) | {"b_owner": fence[0], "b_token": fence[1]}


def _run_fenced(conn: Connection, statement: Any, params: list[dict[str, Any]]) -> None:
    """Run a fenced UPDATE once per row; any row not changed means its claim moved on:
    raise, so the whole transaction is rolled back."""
    for row in params:
        if conn.execute(statement, row).rowcount != 1:
            raise ClaimLostError(
                f"message {row['b_id']} is held by another process now, or was finished "
                f"already (token {row['b_token']} of {row['b_owner']})"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class OutboundDraft:
    """A reply to queue in the outbox."""

    conversation_id: int
    channel: str
    text: str
    markup: str = "markdown"
    reply_to_id: int | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = "pending"


@dataclasses.dataclass(frozen=True, slots=True)
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


_CALL_FIELDS = tuple(f.name for f in dataclasses.fields(CallRow) if f.name != "reservation_id")


class NamespaceState:
    """``KeyValueState`` over the store's ``state`` table."""

    def __init__(self, store: Store, namespace: str) -> None:
        self._store = store
        self.namespace = namespace

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        found, value = await self._store.get_state(self.namespace, key)
        return value if found else default

    async def set(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key``."""
        await self._store.set_state(self.namespace, key, value)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self._store.delete_state(self.namespace, key)


def dollars(nanos: int | None) -> Decimal | None:
    """Nano-dollars as a Decimal dollar amount."""
    return None if nanos is None else Decimal(nanos) / NANOS_PER_DOLLAR


def nanos(cost: Decimal | None) -> int | None:
    """A Decimal dollar amount as whole nano-dollars (rounded half up)."""
    if cost is None:
        return None
    return int((cost * NANOS_PER_DOLLAR).to_integral_value(rounding="ROUND_HALF_UP"))


# Plain columns rather than ORM entities: history is read for every answer, and rows
# without identity-map bookkeeping come back several times faster.
_SNAPSHOT = (
    _messages.c.id,
    _messages.c.conversation_id,
    _conversations.c.channel,
    _conversations.c.chat_id,
    _conversations.c.thread_id,
    _messages.c.direction,
    _messages.c.text,
    _messages.c.status,
    _messages.c.external_id,
    _messages.c.sender_id,
    _messages.c.sender_name,
    _messages.c.markup,
    _messages.c.reply_to_id,
    _messages.c.attempts,
    _messages.c.next_attempt_at,
    _messages.c.error,
    _messages.c.meta,
    _messages.c.attachments,
    _messages.c.created_at,
    _messages.c.claimed_by,
)


_SNAPSHOT_QUERY = select(*_SNAPSHOT).select_from(
    _messages.join(_conversations, _messages.c.conversation_id == _conversations.c.id)
)
_HISTORY = _history_query(bounded=False)
_HISTORY_BEFORE = _history_query(bounded=True)
# the running summary and where history starts, for conversation_context
_CONTEXT = (
    select(
        _conversations.c.history_start_id,
        _conversations.c.updated_at,
        _summaries.c.text,
        _summaries.c.covers_through_id,
    )
    .outerjoin(_summaries, _summaries.c.conversation_id == _conversations.c.id)
    .where(_conversations.c.id == bindparam("b_conversation_id"))
)
_FIND_CONVERSATION = select(_conversations.c.id).where(_conversations.c.key == bindparam("b_key"))
_FIND_MESSAGE = select(_messages.c.id).where(
    _messages.c.channel == bindparam("b_channel"),
    _messages.c.direction == "in",
    _messages.c.external_id == bindparam("b_external_id"),
)
_INSERT_CALL = insert(_calls)


def _reservations_of(calls: Sequence[CallRow]) -> list[int]:
    return [c.reservation_id for c in calls if c.reservation_id is not None]


def _drop_reservations(conn: Connection, ids: list[int]) -> None:
    """The calls holding these reservations are stored now: they count instead."""
    for chunk in _chunks(ids):
        conn.execute(delete(_reservations).where(_reservations.c.id.in_(chunk)))


_INSERT_REPLY = insert(_messages).returning(_messages.c.id)
# the conversations among these with an earlier reply still to go out (or streaming)
_WAITING_REPLIES = (
    select(_messages.c.conversation_id)
    .where(
        _messages.c.conversation_id.in_(bindparam("b_ids", expanding=True)),
        _messages.c.direction == "out",
        _one_of(_messages.c.status, (*UNDELIVERED_OUT, "streaming")),
    )
    .distinct()
)
_CONTEXTS = (
    select(
        _conversations.c.id,
        _conversations.c.history_start_id,
        _conversations.c.updated_at,
        _summaries.c.text,
        _summaries.c.covers_through_id,
    )
    .outerjoin(_summaries, _summaries.c.conversation_id == _conversations.c.id)
    .where(_conversations.c.id.in_(bindparam("b_ids", expanding=True)))
)
# SET takes the columns named in the parameters
_UPDATE_MESSAGE = update(_messages).where(_messages.c.id == bindparam("b_id"))
_NOW = select(func.now())
_INSERT_RESERVATION = insert(_reservations).returning(_reservations.c.id)
# reservations take their ids one transaction at a time, so ids follow commit order
_RESERVATION_LOCK = select(func.pg_advisory_xact_lock(0x626F746B6974))
_OLDER_UNFINISHED = (
    select(_messages.c.id)
    .where(
        _messages.c.conversation_id == bindparam("b_conversation_id"),
        _messages.c.id < bindparam("b_before_id"),
        _messages.c.direction == "in",
        _one_of(_messages.c.status, UNFINISHED_IN),
    )
    .limit(1)
)
# an update that happens only while the row is claimed by b_owner with token b_token
_UPDATE_FENCED = update(_messages).where(
    _messages.c.id == bindparam("b_id"),
    _messages.c.claimed_by == bindparam("b_owner"),
    _messages.c.claim_token == bindparam("b_token"),
)
# a finish happens once: a retry after a commit the client did not hear of (the
# connection lost mid-commit) finds the message finished and changes nothing
_FINISH_FENCED = _UPDATE_FENCED.where(_one_of(_messages.c.status, UNFINISHED_IN))
_SET_STATUS = update(_messages).where(_messages.c.id.in_(bindparam("b_ids", expanding=True)))
# changes nothing, only while the message is held unfinished (and locks its row)
_STILL_HELD = _FINISH_FENCED.values(claim_token=_messages.c.claim_token)
_INSERT_TOOL_CALL = insert(_tool_calls).returning(_tool_calls.c.id)


def _snapshot(r: Any) -> StoredMessage:
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


def _attachment_json(a: Attachment) -> dict[str, Any]:
    return {"name": a.name, "content_type": a.content_type, "size": a.size, "url": a.url}


def _jsonable(value: Any) -> Any:
    """Make adapter payloads storable as JSON: datetimes and bytes become strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime | timedelta | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _store_error(what: str, exc: BaseException) -> StoreError:
    """The ``StoreError`` for a driver's error: ``StoreUnavailableError`` when the
    database could not be reached (worth trying again once it is back)."""
    message = f"could not {what}: {short_error(exc)}"
    if _unreachable(exc):
        return StoreUnavailableError(message)
    return StoreError(message)


# operational errors that are the schema's or the query's, not the connection's
_NOT_OUTAGES = ("no such table", "no such column", "syntax error", "does not exist")


# PostgreSQL's SQLSTATE classes of an outage: a lost connection (08), the server
# shutting down or starting (57: admin shutdown, crash shutdown, cannot connect now),
# out of resources (53)
_OUTAGE_CLASSES = ("08", "57", "53")


def _unreachable(exc: BaseException) -> bool:
    """Whether a driver's error says the database could not be reached."""
    if isinstance(exc, OSError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in _OUTAGE_CLASSES:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return not any(marker in text for marker in _NOT_OUTAGES)
    return False
