"""Claims on messages: a process takes inbound messages to answer and replies to send,
each with a fencing token, renews its claims while it works, and gives them up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, case, or_, update

from botkit.exceptions import StoreError
from botkit.store._section import Section
from botkit.store._statements import (
    NOW,
    messages,
    rowcount,
)
from botkit.store.models import utcnow
from botkit.store.records import UNDELIVERED_OUT, UNFINISHED_IN, Claim, Fence

__all__ = ["ClaimStore"]


class ClaimStore(Section):
    """Who holds which message (``store.claims``)."""

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
        ours = and_(messages.c.claimed_by == claim.owner, ~self._free(now))
        query = (
            update(messages)
            .where(
                messages.c.id.in_(list(ids)),
                messages.c.status.in_(list(from_statuses)),
                or_(self._free(now), messages.c.claimed_by == claim.owner),
            )
            .values(
                status=status,
                claimed_by=claim.owner,
                claimed_until=claim.until,
                claim_token=case((ours, messages.c.claim_token), else_=messages.c.claim_token + 1),
                updated_at=now,
                **({"attempts": messages.c.attempts + 1} if count_attempt else {}),
            )
            .returning(messages.c.id, messages.c.claim_token)
        )

        def op(conn: Connection) -> Fence:
            return {int(i): int(t) for i, t in sorted(conn.execute(query).all())}

        return await self._write("claim messages", op)

    async def release_all(self, owner: str) -> int:
        """Give up every claim ``owner`` holds (a clean stop): the next process to look
        takes the work over at once instead of waiting for the claims to lapse."""
        query = (
            update(messages)
            .where(messages.c.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
        return await self._write("release claims", rowcount(query))

    async def release(self, ids: Sequence[int], owner: str) -> int:
        """Give up ``owner``'s claims on these messages (work it could not finish), so
        the next sweep takes them up again."""
        query = (
            update(messages)
            .where(messages.c.id.in_(list(ids)), messages.c.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
        return await self._write("release claims", rowcount(query))

    async def release_conversation(self, conversation_id: int, owner: str) -> int:
        """Give up ``owner``'s claims on a conversation's undelivered replies."""
        query = (
            update(messages)
            .where(
                messages.c.conversation_id == conversation_id,
                messages.c.direction == "out",
                messages.c.claimed_by == owner,
                messages.c.status.in_(UNDELIVERED_OUT),
            )
            .values(claimed_by=None, claimed_until=None)
        )
        return await self._write("release claims", rowcount(query))

    async def renew(self, claim: Claim) -> int:
        """Extend every claim ``claim.owner`` holds on unfinished work; returns how many."""
        query = (
            update(messages)
            .where(
                messages.c.claimed_by == claim.owner,
                # by direction and status: the unfinished rows are sought through their
                # index, not found by reading every message ever stored
                or_(
                    and_(messages.c.direction == "in", messages.c.status.in_(UNFINISHED_IN)),
                    and_(
                        messages.c.direction == "out",
                        messages.c.status.in_((*UNDELIVERED_OUT, "streaming")),
                    ),
                ),
            )
            .values(claimed_until=claim.until)
        )
        return await self._write("renew claims", rowcount(query))

    async def database_now(self) -> datetime:
        """The database's clock (the process's own on SQLite): claims are written in it."""
        if self.db.sqlite:
            return utcnow()
        found = await self._read("read the clock", lambda conn: conn.execute(NOW).scalar())
        if not isinstance(found, datetime):  # pragma: no cover - PostgreSQL's now()
            raise StoreError("the database did not say what time it is")
        return found
