"""Model calls and what they cost: recorded, reserved before they are made (so budgets
see calls in flight), summed for budgets and reported by day, model, channel and user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, Integer, and_, delete, func, select, update

from botkit.store._section import Section
from botkit.store._statements import (
    INSERT_CALL,
    INSERT_RESERVATION,
    RESERVATION_LOCK,
    call_values,
    calls,
    drop_reservations,
    reservations,
    reservations_of,
)
from botkit.store.engine import Database
from botkit.store.models import utcnow
from botkit.store.records import CallRow, UsageRow

__all__ = ["UsageStore"]


class UsageStore(Section):
    """Usage and spend (``store.usage``)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._unsaved: dict[int, CallRow] = {}

    async def record_call(self, call: CallRow) -> None:
        """Store one model call with its usage and cost."""
        await self.record_calls([call])

    async def record_calls(self, made: Sequence[CallRow]) -> None:
        """Store model calls with their usage and cost, in one transaction."""
        if not made:
            return
        now = utcnow()
        values = [call_values(call, now) for call in made]
        held = reservations_of(made)

        def op(conn: Connection) -> None:
            INSERT_CALL.many(conn, values)
            drop_reservations(conn, held)

        await self._write("record model calls", op)
        self.forget_unsaved(made)

    def note_unsaved(self, call: CallRow) -> None:
        """A model call made but stored later (with its message's outcome): until then
        :meth:`spend` counts it from memory, so budgets see it."""
        self._unsaved[id(call)] = call

    def forget_unsaved(self, made: Sequence[CallRow]) -> None:
        """The calls were stored (or given up on): stop counting them from memory."""
        for call in made:
            self._unsaved.pop(id(call), None)

    async def report(self, *, since: datetime | None = None) -> list[UsageRow]:
        """Spend and tokens grouped by day, model, channel and user, newest day first."""
        c = calls.c
        day = self._utc_day(c.created_at)
        query = select(
            day.label("day"),
            c.model,
            func.coalesce(c.channel, "").label("channel"),
            func.coalesce(c.user_id, "").label("user"),
            func.count(c.id),
            func.coalesce(func.sum(c.prompt_tokens), 0),
            func.coalesce(func.sum(c.completion_tokens), 0),
            func.coalesce(func.sum(c.cost_nanos), 0),
            func.sum(func.cast(and_(c.cost_nanos.is_(None), c.ok.is_(True)), Integer())),
            func.sum(func.cast(c.usage_estimated, Integer())),
        ).group_by("day", c.model, "channel", "user")
        if since is not None:
            query = query.where(c.created_at >= since)
        query = query.order_by(day.desc(), c.model)

        def op(conn: Connection) -> list[UsageRow]:
            return [
                UsageRow(
                    str(d),
                    m,
                    ch,
                    u,
                    int(n),
                    int(p),
                    int(o),
                    int(cost),
                    int(unpriced or 0),
                    int(estimated or 0),
                )
                for d, m, ch, u, n, p, o, cost, unpriced, estimated in conn.execute(query).all()
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
        c = calls.c
        query = select(
            func.coalesce(func.sum(c.prompt_tokens + c.completion_tokens), 0),
            func.coalesce(func.sum(c.cost_nanos), 0),
        ).where(c.created_at >= since)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        if channel is not None:
            query = query.where(c.channel == channel)
        held = reservations.c
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
                conn.execute(RESERVATION_LOCK)
            return int(conn.execute(INSERT_RESERVATION, values).scalar_one())

        return await self._write("reserve spend", op)

    async def settle_reservation(
        self, reservation_id: int, *, tokens: int, cost_nanos: int | None
    ) -> None:
        """The call was made: its reservation holds the real usage until it is stored."""
        query = (
            update(reservations)
            .where(reservations.c.id == reservation_id)
            .values(tokens=tokens, cost_nanos=cost_nanos)
        )
        await self._write("settle reservation", lambda conn: conn.execute(query))

    async def release_reservation(self, reservation_id: int) -> None:
        """The call was not made (refused, or failed without usage): drop its hold."""
        query = delete(reservations).where(reservations.c.id == reservation_id)
        await self._write("release reservation", lambda conn: conn.execute(query))
