"""Inbound messages: accepted once per (channel, external id), answered in order, and
finished together with their replies in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, case, select, update

from botkit.messages import ConversationRef, Message
from botkit.store._batch import Accept, Accepting, Finish, Intake, set_status
from botkit.store._section import Section
from botkit.store._statements import (
    OLDER_UNFINISHED,
    SNAPSHOT_QUERY,
    UPDATE_FENCED,
    attachment_json,
    aware,
    call_values,
    conversations,
    fence_params,
    jsonable,
    messages,
    reply_row,
    reservations_of,
    run_fenced,
    snapshots,
)
from botkit.store.engine import Database
from botkit.store.models import utcnow
from botkit.store.records import (
    UNFINISHED_IN,
    Accepted,
    CallRow,
    Claim,
    ContextPlan,
    Fence,
    Finished,
    OutboundDraft,
    OutboundSettle,
    Resumable,
    StoredMessage,
)
from botkit.store.usage import UsageStore

__all__ = ["InboundStore"]


class InboundStore(Section):
    """The inbox's side of the store (``store.inbound``)."""

    def __init__(self, database: Database, intake: Intake, usage: UsageStore) -> None:
        super().__init__(database)
        self._intake = intake
        self._usage = usage

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
        accepted, conversation_id, _read = await self.accept_reading(
            message, claim=claim, skip=skip
        )
        return accepted, conversation_id

    async def accept_reading(
        self,
        message: Message,
        *,
        claim: Claim | None = None,
        skip: str | None = None,
        plan: ContextPlan | None = None,
    ) -> Accepting:
        """:meth:`accept`, and in the same transaction the turns ``plan`` asks for (the
        new message's among them), when the message is new and in that conversation.

        Returns:
            What happened, the id of the message's conversation, and what was read
            (``None`` when nothing was).
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
            "attachments": [attachment_json(a) for a in message.attachments] or None,
            "meta": jsonable(dict(message.metadata)) or None,
            "raw": jsonable(dict(message.raw)) if message.raw is not None else None,
            "attempts": 0,
            "created_at": message.received_at,
            "updated_at": now,
            "claimed_by": claim.owner if claim else None,
            "claimed_until": claim.until if claim else None,
            "claim_token": 1 if claim else 0,
        }
        op = Accept(self._intake, message.conversation, values, plan)
        accepting = await self._write("accept message", op)
        self._intake.conversations.remember(message.conversation, accepting[1])
        return accepting

    def known_conversation(self, ref: ConversationRef) -> int | None:
        """The id of the conversation at ``ref``, if this process has it cached."""
        return self._intake.conversations.known(ref)

    @property
    def context_changes(self) -> int:
        """Grows whenever this process changes a conversation's start, summary or held
        messages (see ``Conversations.context_changes``)."""
        return self._intake.conversations.context_changes

    async def unfinished(self, *, now: datetime | None = None) -> list[StoredMessage]:
        """Inbound messages accepted but not yet answered, oldest first (crash recovery).

        With ``now``, only those no live process has claimed: unclaimed, or whose claim
        lapsed before ``now``.
        """
        conditions = [messages.c.direction == "in", messages.c.status.in_(UNFINISHED_IN)]
        if now is not None:
            conditions.append(self._free(now))
        query = SNAPSHOT_QUERY.where(*conditions).order_by(messages.c.id)
        return await self._read("list unfinished messages", snapshots(query))

    async def resumable(self, *, now: datetime) -> list[Resumable]:
        """Every unfinished inbound message, in id order, with whether a process may take
        it now (no live claim) and when it is due: the dispatcher takes each
        conversation's messages in order up to the first it may not."""
        free = case((self._free(now), True), else_=False)
        query = (
            select(
                messages.c.id,
                messages.c.conversation_id,
                free,
                messages.c.next_attempt_at,
                messages.c.claimed_by,
            )
            .where(messages.c.direction == "in", messages.c.status.in_(UNFINISHED_IN))
            .order_by(messages.c.id)
        )

        def op(conn: Connection) -> list[Resumable]:
            return [
                Resumable(int(i), int(c), bool(f), aware(due), by)
                for i, c, f, due, by in conn.execute(query).all()
            ]

        return await self._read("list unfinished messages", op)

    async def older_unfinished(self, conversation_id: int, before_id: int) -> bool:
        """Whether an inbound message of the conversation older than ``before_id`` is
        still unanswered (held by another process, or waiting for a retry)."""
        params = {"b_conversation_id": conversation_id, "b_before_id": before_id}
        return await self._read(
            "look for older messages",
            lambda conn: conn.execute(OLDER_UNFINISHED, params).first() is not None,
        )

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
            "attempts": messages.c.attempts + 1,
            "updated_at": now,
        }
        fenced = fence_params(ids, fence, claim) or []
        statement = UPDATE_FENCED.values(**values)
        await self._write("postpone messages", lambda conn: run_fenced(conn, statement, fenced))

    async def set_status(
        self, ids: Sequence[int], status: str, *, error: str | None = None
    ) -> None:
        """Move inbound messages to ``status`` (``processing``, ``done``, ``failed``...).

        Back to ``pending`` (a held message released), a message may join its
        conversation's history behind newer turns: the conversation is marked changed
        (``ContextRead.changed_at``), so the turns a process keeps in memory are re-read.
        """
        now = utcnow()
        values = {"status": status, "error": error, "updated_at": now}

        if status == "pending":
            self._intake.conversations.context_changed()

        def op(conn: Connection) -> None:
            set_status(conn, list(ids), values)
            if status == "pending":
                owners = select(messages.c.conversation_id).where(messages.c.id.in_(list(ids)))
                conn.execute(
                    update(conversations)
                    .where(conversations.c.id.in_(owners.scalar_subquery()))
                    .values(updated_at=now)
                )

        await self._write("update message status", op)

    async def finish(
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

        With ``fence`` (each message's fencing token, as ``ClaimStore.claim`` returned
        it), the whole transaction happens only while ``claim.owner`` still holds every
        message with that token.

        Returns:
            The outbox ids of the replies, in order, and whether they are claimed.

        Raises:
            ClaimLostError: a fenced message is held by another process now; nothing
                was stored.
        """
        now = utcnow()
        op = Finish(
            ids=list(ids),
            done={"status": status, "error": error, "updated_at": now},
            replies=[reply_row(draft, now) for draft in replies],
            claim=claim,
            calls=[call_values(call, now) for call in calls],
            fence=fence_params(ids, fence, claim),
            reservations=reservations_of(calls),
            settles=list(settles),
        )
        finished = await self._write("finish message", op)
        self._usage.forget_unsaved(calls)
        return finished

    async def finished_under(self, owner: str, fence: Fence) -> bool:
        """Whether every one of these messages was finished while ``owner`` held it with
        its token (a finish keeps the claim it was made under): after a finish whose
        commit went unheard, whether it landed."""
        query = select(
            messages.c.id, messages.c.claimed_by, messages.c.claim_token, messages.c.status
        ).where(messages.c.id.in_(list(fence)))

        def op(conn: Connection) -> bool:
            rows = conn.execute(query).all()
            return len(rows) == len(fence) and all(
                by == owner and token == fence[int(i)] and status not in UNFINISHED_IN
                for i, by, token, status in rows
            )

        return await self._read("check a finish", op)
