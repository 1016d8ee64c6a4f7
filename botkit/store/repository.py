"""Every query botkit runs, behind one ``Store`` object the rest of the core uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from botkit.exceptions import StoreError
from botkit.inbox import Accepted
from botkit.messages import Attachment, ConversationRef, Message
from botkit.store.engine import Database
from botkit.store.models import (
    ConversationRow,
    ConversationSummaryRow,
    MessageRow,
    ModelCallRow,
    StateRow,
    utcnow,
)
from botkit.store.records import StoredMessage, UsageRow

__all__ = ["NANOS_PER_DOLLAR", "Claim", "Finished", "NamespaceState", "Store"]

T = TypeVar("T")
NANOS_PER_DOLLAR = 1_000_000_000
UNFINISHED_IN = ("pending", "processing")
_CONVERSATION_CACHE = 100_000
UNDELIVERED_OUT = ("pending", "sending")
# inbound turns the model sees: answered, being answered, or kept as passive context
# (a pending one is the message being answered, or one of its coalesced burst: later
# pending messages are excluded by the ``before_id`` every history read gives)
HISTORY_IN = ("pending", "processing", "done", "context")


class Store:
    """The conversation store: inbox, outbox, history, usage, state and summaries.

    Every method runs in its own transaction and raises ``StoreError`` (with the driver's
    error as its cause) when the database fails.
    """

    def __init__(self, database: Database) -> None:
        self.db = database
        # conversation key -> id; rows are never deleted or re-keyed, so it never goes stale
        self._conversation_ids: dict[str, int] = {}
        self._unsaved: dict[int, CallRow] = {}

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

        async def op(session: AsyncSession) -> tuple[Accepted, int]:
            conversation_id = await self._conversation_id(session, message.conversation)
            values = {
                "conversation_id": conversation_id,
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
                "updated_at": utcnow(),
                "claimed_by": claim.owner if claim else None,
                "claimed_until": claim.until if claim else None,
            }
            inserted = await session.scalar(
                self._insert_ignore(MessageRow, values, ["channel", "direction", "external_id"])
            )
            if inserted is not None:
                return Accepted(message_id=int(inserted), duplicate=False), conversation_id
            existing = await session.scalar(
                select(MessageRow.id).where(
                    MessageRow.channel == message.channel,
                    MessageRow.direction == "in",
                    MessageRow.external_id == message.external_id,
                )
            )
            if existing is None:  # pragma: no cover - the insert only skips on conflict
                raise StoreError("a duplicate message vanished while it was being accepted")
            return Accepted(message_id=existing, duplicate=True), conversation_id

        accepted, conversation_id = await self._run_write("accept message", op)
        self._remember(message.conversation, conversation_id)
        return accepted, conversation_id

    async def conversation_id(self, ref: ConversationRef) -> int:
        """The id of the conversation at ``ref``, created when new."""
        async with self._write("find conversation") as session:
            found = await self._conversation_id(session, ref)
        self._remember(ref, found)
        return found

    async def _conversation_id(self, session: AsyncSession, ref: ConversationRef) -> int:
        known = self._conversation_ids.get(ref.key)
        if known is not None:
            return known
        found, _created = await self._find_or_create_conversation(session, ref)
        return found

    def _remember(self, ref: ConversationRef, conversation_id: int) -> None:
        """Cache a conversation's id, once the transaction that found or made it has
        committed (a rolled-back row's id may be given to another conversation)."""
        if len(self._conversation_ids) >= _CONVERSATION_CACHE:
            self._conversation_ids.clear()  # crude bound; refilled on demand
        self._conversation_ids[ref.key] = conversation_id

    async def _find_or_create_conversation(
        self, session: AsyncSession, ref: ConversationRef
    ) -> tuple[int, bool]:
        """The conversation's id, and whether this transaction created it."""
        found = await session.scalar(
            select(ConversationRow.id).where(ConversationRow.key == ref.key)
        )
        if found is not None:
            return int(found), False
        values = {
            "key": ref.key,
            "channel": ref.channel,
            "chat_id": ref.chat_id,
            "thread_id": ref.thread_id,
            "history_start_id": 0,
            "created_at": utcnow(),
            "updated_at": utcnow(),
        }
        inserted = await session.scalar(self._insert_ignore(ConversationRow, values, ["key"]))
        if inserted is not None:
            return int(inserted), True
        found = await session.scalar(
            select(ConversationRow.id).where(ConversationRow.key == ref.key)
        )
        if found is None:  # pragma: no cover
            raise StoreError("conversation vanished while it was being created")
        return int(found), False

    def _utc_day(self, column: Any) -> Any:
        """SQL for a timestamp's UTC date as YYYY-MM-DD (PostgreSQL would otherwise
        render it in the session's time zone)."""
        if self.db.sqlite:  # stored as UTC text
            return func.substr(func.cast(column, _text_type()), 1, 10)
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")

    def _insert_ignore(self, model: Any, values: dict[str, Any], keys: list[str]) -> Any:
        dialect = postgresql if not self.db.sqlite else sqlite
        statement = dialect.insert(model).values(**values)
        return statement.on_conflict_do_nothing(index_elements=keys).returning(model.id)

    async def unfinished_inbound(self, *, now: datetime | None = None) -> list[StoredMessage]:
        """Inbound messages accepted but not yet answered, oldest first (crash recovery).

        With ``now``, only those no live process has claimed: unclaimed, or whose claim
        lapsed before ``now``.
        """
        conditions = [MessageRow.direction == "in", MessageRow.status.in_(UNFINISHED_IN)]
        if now is not None:
            conditions.append(_claim_free(now))
        async with self._read("list unfinished messages") as session:
            rows = await session.execute(
                select(*_SNAPSHOT)
                .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
                .where(*conditions)
                .order_by(MessageRow.id)
            )
            return [_snapshot(r) for r in rows.all()]

    async def claim(
        self,
        ids: Sequence[int],
        claim: Claim,
        *,
        status: str,
        from_statuses: Sequence[str],
        count_attempt: bool = False,
    ) -> list[int]:
        """Take messages for processing or delivery, unless another live process holds them.

        A message is taken when its status is one of ``from_statuses`` and it is
        unclaimed, claimed by ``claim.owner`` already, or its claim lapsed.

        Returns:
            The ids taken (their status is now ``status``), in id order.
        """
        now = utcnow()
        async with self._write("claim messages") as session:
            taken = await session.scalars(
                update(MessageRow)
                .where(
                    MessageRow.id.in_(list(ids)),
                    MessageRow.status.in_(list(from_statuses)),
                    or_(_claim_free(now), MessageRow.claimed_by == claim.owner),
                )
                .values(
                    status=status,
                    claimed_by=claim.owner,
                    claimed_until=claim.until,
                    updated_at=now,
                    **({"attempts": MessageRow.attempts + 1} if count_attempt else {}),
                )
                .returning(MessageRow.id)
            )
            return sorted(taken)

    async def release_claims(self, owner: str) -> int:
        """Give up every claim ``owner`` holds (a clean stop): the next process to look
        takes the work over at once instead of waiting for the claims to lapse."""
        async with self._write("release claims") as session:
            result = await session.execute(
                update(MessageRow)
                .where(MessageRow.claimed_by == owner)
                .values(claimed_by=None, claimed_until=None)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def release(self, ids: Sequence[int], owner: str) -> int:
        """Give up ``owner``'s claims on these messages (work it could not finish), so
        the next sweep takes them up again."""
        async with self._write("release claims") as session:
            result = await session.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(list(ids)), MessageRow.claimed_by == owner)
                .values(claimed_by=None, claimed_until=None)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def release_conversation(self, conversation_id: int, owner: str) -> int:
        """Give up ``owner``'s claims on a conversation's undelivered replies."""
        async with self._write("release claims") as session:
            result = await session.execute(
                update(MessageRow)
                .where(
                    MessageRow.conversation_id == conversation_id,
                    MessageRow.direction == "out",
                    MessageRow.claimed_by == owner,
                    MessageRow.status.in_(UNDELIVERED_OUT),
                )
                .values(claimed_by=None, claimed_until=None)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def renew_claims(self, claim: Claim) -> int:
        """Extend every claim ``claim.owner`` holds on unfinished work; returns how many."""
        async with self._write("renew claims") as session:
            result = await session.execute(
                update(MessageRow)
                .where(
                    MessageRow.claimed_by == claim.owner,
                    MessageRow.status.in_((*UNFINISHED_IN, *UNDELIVERED_OUT, "streaming")),
                )
                .values(claimed_until=claim.until)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def messages(self, ids: Sequence[int]) -> list[StoredMessage]:
        """The messages with these ids, in id order."""
        async with self._read("load messages") as session:
            rows = await session.execute(
                select(*_SNAPSHOT)
                .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
                .where(MessageRow.id.in_(list(ids)))
                .order_by(MessageRow.id)
            )
            return [_snapshot(r) for r in rows.all()]

    async def set_inbound_status(
        self, ids: Sequence[int], status: str, *, error: str | None = None
    ) -> None:
        """Move inbound messages to ``status`` (``processing``, ``done``, ``failed``...)."""
        async with self._write("update message status") as session:
            await session.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(list(ids)))
                .values(status=status, error=error, updated_at=utcnow())
            )

    async def annotate(self, message_id: int, values: dict[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into a message's metadata (a plugin's verdict, a label).

        Returns:
            The metadata after the merge.
        """
        async with self._write("annotate message") as session:
            row = await session.get(MessageRow, message_id)
            if row is None:
                raise StoreError(f"no message {message_id}")
            meta = {**(row.meta or {}), **_jsonable(values)}
            row.meta = meta
            row.updated_at = utcnow()
            return meta

    async def finish_inbound(
        self,
        ids: Sequence[int],
        status: str,
        replies: Sequence[OutboundDraft],
        *,
        error: str | None = None,
        claim: Claim | None = None,
        calls: Sequence[CallRow] = (),
    ) -> Finished:
        """Mark inbound messages finished and queue their replies, in one transaction.

        Either both happen or neither: a crash cannot leave a message answered but not
        marked, or marked but with its reply lost.

        With ``claim``, when nothing earlier of the conversation waits in the outbox, the
        replies are stored already claimed for sending (first attempt counted), so the
        caller can send them at once without another round trip.

        ``calls`` (the model calls made answering it) are stored in the same transaction.

        Returns:
            The outbox ids of the replies, in order, and whether they are claimed.
        """

        async def op(session: AsyncSession) -> Finished:
            session.add_all(
                ModelCallRow(**dataclasses.asdict(call), created_at=utcnow()) for call in calls
            )
            claimed = False
            if claim is not None and replies:
                waiting = await session.scalar(
                    select(MessageRow.id)
                    .where(
                        MessageRow.conversation_id == replies[0].conversation_id,
                        MessageRow.direction == "out",
                        MessageRow.status.in_((*UNDELIVERED_OUT, "streaming")),
                    )
                    .limit(1)
                )
                claimed = waiting is None
            out_ids = [
                await self._add_outbound(session, draft, claim if claimed else None)
                for draft in replies
            ]
            await session.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(list(ids)))
                .values(status=status, error=error, updated_at=utcnow())
            )
            await session.flush()  # the calls, before a batch-mate's query sees the session
            return Finished(out_ids, claimed)

        finished = await self._run_write("finish message", op)
        self.forget_unsaved(calls)
        return finished

    # -- outbox --------------------------------------------------------------------------

    async def add_outbound(self, draft: OutboundDraft, *, claim: Claim | None = None) -> int:
        """Queue one reply in the outbox (claimed by ``claim``, if given); returns its id."""
        async with self._write("queue reply") as session:
            return await self._add_outbound(session, draft, claim)

    async def _add_outbound(
        self, session: AsyncSession, draft: OutboundDraft, claim: Claim | None = None
    ) -> int:
        sending = claim is not None and draft.status == "pending"  # sent right away
        now = utcnow()
        inserted = await session.scalar(
            insert(MessageRow)
            .values(
                conversation_id=draft.conversation_id,
                channel=draft.channel,
                direction="out",
                text=draft.text,
                markup=draft.markup,
                status="sending" if sending else draft.status,
                reply_to_id=draft.reply_to_id,
                meta=_jsonable(dict(draft.meta)) or None,
                attempts=1 if sending else 0,
                created_at=now,
                updated_at=now,
                claimed_by=claim.owner if claim else None,
                claimed_until=claim.until if claim else None,
            )
            .returning(MessageRow.id)
        )
        if inserted is None:  # pragma: no cover - an insert always returns its id
            raise StoreError("the reply was not stored")
        return int(inserted)

    async def pending_outbound(self, conversation_id: int) -> list[StoredMessage]:
        """Undelivered replies of one conversation, oldest first."""
        async with self._read("list outbox") as session:
            rows = await session.execute(
                select(*_SNAPSHOT)
                .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
                .where(
                    MessageRow.conversation_id == conversation_id,
                    MessageRow.direction == "out",
                    MessageRow.status.in_(UNDELIVERED_OUT),
                )
                .order_by(MessageRow.id)
            )
            return [_snapshot(r) for r in rows.all()]

    async def conversations_with_undelivered(self, *, now: datetime | None = None) -> list[int]:
        """Conversations that have replies waiting in the outbox (crash recovery).

        With ``now``, only those with a reply that is due (no later retry time) and that
        no live process has claimed.
        """
        conditions = [MessageRow.direction == "out", MessageRow.status.in_(UNDELIVERED_OUT)]
        if now is not None:
            conditions.append(_claim_free(now))
            conditions.append(
                or_(MessageRow.next_attempt_at.is_(None), MessageRow.next_attempt_at <= now)
            )
        async with self._read("list outbox") as session:
            rows = await session.scalars(
                select(MessageRow.conversation_id).where(*conditions).distinct()
            )
            return sorted(rows)

    async def interrupt_streams(self) -> int:
        """Mark replies that were streaming when their process died as failed."""
        async with self._write("close interrupted streams") as session:
            result = await session.execute(
                update(MessageRow)
                .where(
                    MessageRow.direction == "out",
                    MessageRow.status == "streaming",
                    _claim_free(utcnow()),
                )
                .values(status="failed", error="interrupted by a restart", updated_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def update_outbound(self, outbound_id: int, **values: Any) -> None:
        """Set delivery fields of an outbox entry (status, attempts, external id...)."""
        values["updated_at"] = utcnow()

        async def op(session: AsyncSession) -> None:
            await session.execute(
                update(MessageRow).where(MessageRow.id == outbound_id).values(**values)
            )

        await self._run_write("update outbox", op)

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
        async with self._read("load history") as session:
            start = await session.scalar(
                select(ConversationRow.history_start_id).where(
                    ConversationRow.id == conversation_id
                )
            )
            return await _history_rows(
                session, conversation_id, max(start or 0, after_id), before_id, limit
            )

    async def conversation_context(
        self, conversation_id: int, *, before_id: int | None, limit: int
    ) -> tuple[tuple[str, int] | None, list[StoredMessage]]:
        """The running summary and the newest turns it does not cover, in one read.

        Returns:
            ``(summary text, newest id it covers)`` or ``None``, and the turns after it
            (as :meth:`history`, at most ``limit``).
        """
        async with self._read("load conversation") as session:
            found = (
                await session.execute(
                    select(
                        ConversationRow.history_start_id,
                        ConversationSummaryRow.text,
                        ConversationSummaryRow.covers_through_id,
                    )
                    .outerjoin(
                        ConversationSummaryRow,
                        ConversationSummaryRow.conversation_id == ConversationRow.id,
                    )
                    .where(ConversationRow.id == conversation_id)
                )
            ).one_or_none()
            start, text, covers = found if found is not None else (0, None, None)
            summary = (text, int(covers)) if text is not None and covers is not None else None
            after = max(start or 0, summary[1] if summary else 0)
            rows = await _history_rows(session, conversation_id, after, before_id, limit)
            return summary, rows

    async def chat_messages_since(
        self, channel: str, chat_id: str, *, since: datetime, limit: int
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of every conversation in one chat since
        ``since``, oldest first: all threads of a mailbox, all topics of a group (for a
        digest). Failed replies are left out."""
        async with self._read("load chat messages") as session:
            rows = await session.execute(
                select(*_SNAPSHOT)
                .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
                .where(
                    ConversationRow.channel == channel,
                    ConversationRow.chat_id == chat_id,
                    MessageRow.created_at >= since,
                    MessageRow.status != "failed",
                )
                .order_by(MessageRow.id.desc())
                .limit(limit)
            )
            return [_snapshot(r) for r in reversed(rows.all())]

    async def annotation_counts(
        self, key: str, *, since: datetime | None = None
    ) -> list[tuple[str, str, str, int]]:
        """How often each value of one annotation (``sentiment``, ``spam``...) was
        stored with inbound messages: ``(day, channel, value, count)``, newest day first."""
        value = MessageRow.meta[key].as_string()
        day = self._utc_day(MessageRow.created_at)
        query = (
            select(day.label("day"), MessageRow.channel, value.label("value"), func.count())
            .where(MessageRow.direction == "in", value.is_not(None))
            .group_by("day", MessageRow.channel, "value")
            .order_by(day.desc(), MessageRow.channel, "value")
        )
        if since is not None:
            query = query.where(MessageRow.created_at >= since)
        async with self._read("count annotations") as session:
            return [
                (str(d), c, str(v), int(n)) for d, c, v, n in (await session.execute(query)).all()
            ]

    async def reset_conversation(self, conversation_id: int, *, through_id: int) -> None:
        """Start the conversation afresh: history begins after message ``through_id``."""
        async with self._write("reset conversation") as session:
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(history_start_id=through_id, updated_at=utcnow())
            )
            summary = await session.get(ConversationSummaryRow, conversation_id)
            if summary is not None:
                await session.delete(summary)

    async def summary(self, conversation_id: int) -> tuple[str, int] | None:
        """The running summary and the newest message id it covers, if there is one."""
        async with self._read("load summary") as session:
            row = await session.get(ConversationSummaryRow, conversation_id)
            return None if row is None else (row.text, row.covers_through_id)

    async def save_summary(self, conversation_id: int, text: str, covers_through_id: int) -> None:
        """Replace the running summary of a conversation."""
        async with self._write("save summary") as session:
            row = await session.get(ConversationSummaryRow, conversation_id)
            if row is None:
                session.add(
                    ConversationSummaryRow(
                        conversation_id=conversation_id,
                        text=text,
                        covers_through_id=covers_through_id,
                        updated_at=utcnow(),
                    )
                )
            else:
                row.text, row.covers_through_id, row.updated_at = text, covers_through_id, utcnow()

    # -- usage ---------------------------------------------------------------------------

    async def record_call(self, call: CallRow) -> None:
        """Store one model call with its usage and cost."""
        await self.record_calls([call])

    async def record_calls(self, calls: Sequence[CallRow]) -> None:
        """Store model calls with their usage and cost, in one transaction."""
        if not calls:
            return
        async with self._write("record model calls") as session:
            session.add_all(
                ModelCallRow(**dataclasses.asdict(call), created_at=utcnow()) for call in calls
            )
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
        day = self._utc_day(ModelCallRow.created_at)
        async with self._read("usage report") as session:
            query = select(
                day.label("day"),
                ModelCallRow.model,
                func.coalesce(ModelCallRow.channel, "").label("channel"),
                func.coalesce(ModelCallRow.user_id, "").label("user"),
                func.count(ModelCallRow.id),
                func.coalesce(func.sum(ModelCallRow.prompt_tokens), 0),
                func.coalesce(func.sum(ModelCallRow.completion_tokens), 0),
                func.coalesce(func.sum(ModelCallRow.cost_nanos), 0),
                func.sum(
                    func.cast(
                        and_(ModelCallRow.cost_nanos.is_(None), ModelCallRow.ok.is_(True)),
                        _int_type(),
                    )
                ),
            ).group_by("day", ModelCallRow.model, "channel", "user")
            if since is not None:
                query = query.where(ModelCallRow.created_at >= since)
            rows = await session.execute(query.order_by(day.desc(), ModelCallRow.model))
            return [
                UsageRow(str(d), m, c, u, int(n), int(p), int(o), int(cost), int(unpriced or 0))
                for d, m, c, u, n, p, o, cost, unpriced in rows.all()
            ]

    async def spend(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        channel: str | None = None,
    ) -> tuple[int, int]:
        """Tokens (prompt + completion) and nano-dollars spent since ``since``.

        Narrowed to one user and/or channel when given; for budgets checked before each
        model call, so it is one indexed aggregate query.
        """
        async with self._read("sum spend") as session:
            query = select(
                func.coalesce(
                    func.sum(ModelCallRow.prompt_tokens + ModelCallRow.completion_tokens), 0
                ),
                func.coalesce(func.sum(ModelCallRow.cost_nanos), 0),
            ).where(ModelCallRow.created_at >= since)
            if user_id is not None:
                query = query.where(ModelCallRow.user_id == user_id)
            if channel is not None:
                query = query.where(ModelCallRow.channel == channel)
            stored_tokens, stored_cost = (await session.execute(query)).one()
        tokens, cost = int(stored_tokens or 0), int(stored_cost or 0)
        for call in self._unsaved.values():  # made just now, stored with their message later
            if (user_id is None or call.user_id == user_id) and (
                channel is None or call.channel == channel
            ):
                tokens += (call.prompt_tokens or 0) + (call.completion_tokens or 0)
                cost += call.cost_nanos or 0
        return tokens, cost

    # -- state ---------------------------------------------------------------------------

    def state(self, namespace: str) -> NamespaceState:
        """The persisted key-value state of one plugin or adapter."""
        return NamespaceState(self, namespace)

    async def get_state(self, namespace: str, key: str) -> tuple[bool, Any]:
        """Whether ``key`` is set in ``namespace``, and its value."""
        async with self._read("read state") as session:
            row = await session.get(StateRow, (namespace, key))
            return (False, None) if row is None else (True, row.value)

    async def set_state(self, namespace: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable value."""
        async with self._write("write state") as session:
            row = await session.get(StateRow, (namespace, key))
            if row is None:
                session.add(
                    StateRow(namespace=namespace, key=key, value=value, updated_at=utcnow())
                )
            else:
                row.value, row.updated_at = value, utcnow()

    async def delete_state(self, namespace: str, key: str) -> None:
        """Forget a key; no error when it was not set."""
        async with self._write("delete state") as session:
            row = await session.get(StateRow, (namespace, key))
            if row is not None:
                await session.delete(row)

    # -- plumbing ------------------------------------------------------------------------

    def _read(self, what: str) -> _Guarded:
        return _Guarded(self.db, what, write=False)

    def _write(self, what: str) -> _Guarded:
        return _Guarded(self.db, what, write=True)

    async def _run_write(self, what: str, op: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``op`` in a (group-committed, on SQLite) write transaction."""
        try:
            return await self.db.run_write(op)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not {what}: {_short(exc)}") from exc


async def _history_rows(
    session: AsyncSession, conversation_id: int, after_id: int, before_id: int | None, limit: int
) -> list[StoredMessage]:
    conditions = [
        MessageRow.conversation_id == conversation_id,
        MessageRow.id > after_id,
        or_(
            and_(MessageRow.direction == "in", MessageRow.status.in_(HISTORY_IN)),
            and_(MessageRow.direction == "out", MessageRow.status != "failed"),
        ),
    ]
    if before_id is not None:
        conditions.append(MessageRow.id < before_id)
    rows = await session.execute(
        select(*_SNAPSHOT)
        .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
        .where(*conditions)
        .order_by(MessageRow.id.desc())
        .limit(limit)
    )
    return [_snapshot(r) for r in reversed(rows.all())]


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


def _claim_free(now: datetime) -> Any:
    """SQL: the row is unclaimed, or its claim lapsed before ``now``."""
    return or_(MessageRow.claimed_by.is_(None), MessageRow.claimed_until < now)


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


class _Guarded:
    """A read or write session whose driver errors come out as ``StoreError``."""

    def __init__(self, db: Database, what: str, *, write: bool) -> None:
        self._cm = db.write() if write else db.read()
        self._what = what

    async def __aenter__(self) -> AsyncSession:
        try:
            return await self._cm.__aenter__()
        except SQLAlchemyError as exc:
            raise StoreError(f"could not {self._what}: {_short(exc)}") from exc

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            return await self._cm.__aexit__(*exc_info)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not {self._what}: {_short(exc)}") from exc


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
    MessageRow.id,
    MessageRow.conversation_id,
    ConversationRow.channel,
    ConversationRow.chat_id,
    ConversationRow.thread_id,
    MessageRow.direction,
    MessageRow.text,
    MessageRow.status,
    MessageRow.external_id,
    MessageRow.sender_id,
    MessageRow.sender_name,
    MessageRow.markup,
    MessageRow.reply_to_id,
    MessageRow.attempts,
    MessageRow.next_attempt_at,
    MessageRow.error,
    MessageRow.meta,
    MessageRow.attachments,
    MessageRow.created_at,
    MessageRow.claimed_by,
)


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


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return text[:300]


def _text_type() -> Any:
    from sqlalchemy import String

    return String()


def _int_type() -> Any:
    from sqlalchemy import Integer

    return Integer()


def ids_of(rows: Iterable[StoredMessage]) -> list[int]:
    """The ids of stored messages."""
    return [r.id for r in rows]
