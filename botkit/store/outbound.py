"""The outbox's rows: replies queued, claimed for sending, marked delivered or failed,
and streams cut short by a stopped process."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from botkit.store._batch import Update
from botkit.store._section import Section
from botkit.store._statements import (
    SNAPSHOT_QUERY,
    STILL_HELD,
    UPDATE_FENCED_ROW,
    add_outbound,
    held_params,
    messages,
    reply_row,
    rowcount,
    run_fenced,
    snapshots,
    update_params,
)
from botkit.store.models import utcnow
from botkit.store.records import (
    EARLIER_OUT,
    UNDELIVERED_OUT,
    Claim,
    Fence,
    OutboundDraft,
    OutboundSettle,
    StoredMessage,
)

__all__ = ["OutboundStore", "settle_outbound"]


class OutboundStore(Section):
    """The outbox's side of the store (``store.outbound``)."""

    async def add(
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
        row = reply_row(draft, utcnow())
        holds = held_params(held)

        def op(conn: Connection) -> int:
            run_fenced(conn, STILL_HELD, holds)
            return add_outbound(conn, row, claim)

        return await self._write("queue reply", op)

    async def pending(self, conversation_id: int) -> list[StoredMessage]:
        """Undelivered replies of one conversation, oldest first."""
        # the ids sought by status first: joined to its conversation, the query would
        # walk the conversation's index through every message it ever had
        undelivered = messages.alias("undelivered")
        ids = select(undelivered.c.id).where(
            undelivered.c.conversation_id == conversation_id,
            undelivered.c.direction == "out",
            undelivered.c.status.in_(UNDELIVERED_OUT),
        )
        query = SNAPSHOT_QUERY.where(messages.c.id.in_(ids)).order_by(messages.c.id)
        return await self._read("list outbox", snapshots(query))

    async def earlier_replies(
        self, conversation_id: int, inbound_ids: Sequence[int]
    ) -> list[StoredMessage]:
        """Replies already posted (or queued, or cut short) for messages of
        ``conversation_id`` that are being answered again after their process stopped,
        oldest first: the new answer takes their place, editing what the channel shows."""
        if not inbound_ids:
            return []
        query = SNAPSHOT_QUERY.where(
            # a reply is stored after the message it answers, in its conversation: the
            # conversation's messages from the oldest of these on, not every reply
            messages.c.conversation_id == conversation_id,
            messages.c.id > min(inbound_ids),
            messages.c.direction == "out",
            messages.c.reply_to_id.in_(list(inbound_ids)),
            # a stream still marked as being written is one whose writer stopped: the
            # caller holds the message it answers now
            messages.c.status.in_((*EARLIER_OUT, "streaming")),
        ).order_by(messages.c.id)
        return await self._read("load earlier replies", snapshots(query))

    async def conversations_with_undelivered(
        self, *, now: datetime | None = None, owner: str | None = None
    ) -> list[int]:
        """Conversations that have replies waiting in the outbox (crash recovery).

        With ``now``, only those with a reply that is due (no later retry time) and that
        no live process has claimed (but ``owner``, who may have left it behind).
        """
        conditions = [messages.c.direction == "out", messages.c.status.in_(UNDELIVERED_OUT)]
        if now is not None:
            free = self._free(now)
            conditions.append(or_(free, messages.c.claimed_by == owner) if owner else free)
            conditions.append(
                or_(messages.c.next_attempt_at.is_(None), messages.c.next_attempt_at <= now)
            )
        query = select(messages.c.conversation_id).where(*conditions).distinct()
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
        mine = and_(messages.c.claimed_by == owner, messages.c.id.notin_(list(live)))
        query = (
            update(messages)
            .where(
                messages.c.direction == "out",
                messages.c.status == "streaming",
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
        return await self._write("close interrupted streams", rowcount(query))

    async def update(
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
            await self._write("update outbox", Update(update_params(outbound_id, values)))
            return
        params = settle_outbound(outbound_id, fence, **values)
        await self._write(
            "update outbox", lambda conn: run_fenced(conn, UPDATE_FENCED_ROW, [params])
        )

    async def retry_failed(self, outbound_id: int) -> int | None:
        """Give a reply the outbox gave up on a fresh set of attempts: back to
        ``pending``, unclaimed, due now (a person asked, from the operations page).

        Returns:
            Its conversation's id, to flush; ``None`` when it is not a failed reply (it
            was retried already, or never failed), and nothing changed.
        """
        m = messages.c
        query = (
            update(messages)
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


def settle_outbound(outbound_id: int, fence: tuple[str, int], **values: Any) -> OutboundSettle:
    """The change ``OutboundStore.update(outbound_id, fence=fence, **values)`` makes, to
    be made later in another write (``InboundStore.finish(settles=...)``)."""
    return update_params(outbound_id, values) | {"b_owner": fence[0], "b_token": fence[1]}
