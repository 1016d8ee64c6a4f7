"""Singleton leases and fired job runs: the queries behind "run in one process only".

A lease is a row of ``leases`` named after the work it guards (``scheduler``,
``telegram:<bot id>``, ``imap:<login>@<host>:<port>/<mailbox>``). A process *takes* it
when it is free (never held, released, or lapsed) and *renews* it while it works; the
``token`` grows by one on every take, so each tenure has a number of its own. Expiry is
judged by one clock for every process: PostgreSQL's ``now()``. SQLite serves one
process, so there the process's own UTC clock (``datetime.now``) is used, read when the
statement runs.

A job run is a row of ``job_runs``: (job, due time). Inserting it when absent decides
which process fires that due time; the insert is also fenced by the scheduler's lease
(it happens only while the given tenure still holds it).

The holding logic (when to renew, when to stop) lives in ``botkit.leases``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, func, or_, select, update

from botkit.store._timed import TimedQueries
from botkit.store.engine import Database
from botkit.store.models import Base

__all__ = ["LeaseInfo", "LeaseStore", "Taken"]

T = TypeVar("T")
_leases = Base.metadata.tables["leases"]
_runs = Base.metadata.tables["job_runs"]
NAME_LENGTH = 200  # leases.name and job_runs.job


@dataclasses.dataclass(frozen=True, slots=True)
class Taken:
    """What an attempt to take a lease found.

    Attributes:
        token: this tenure's fencing token, or ``None`` when another process holds it.
        holder: who holds the lease now (the caller, when taken).
        remaining: seconds until the holder's lease lapses unless renewed (by the
            database's clock); 0 when taken.
    """

    token: int | None
    holder: str | None
    remaining: float


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease row as it stands, with the time left judged by the database's clock."""

    name: str
    holder: str | None
    token: int
    until: datetime | None
    remaining: float  # seconds until it lapses; 0 when free or lapsed

    @property
    def held(self) -> bool:
        """Whether someone holds it now."""
        return self.holder is not None and self.remaining > 0


class LeaseStore(TimedQueries):
    """The lease and job-run queries; ``Store.leases``. Every method is one transaction
    and raises ``StoreError`` when the database fails."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)

    # -- leases --------------------------------------------------------------------------

    async def take(self, name: str, holder: str, seconds: float) -> Taken:
        """Take lease ``name`` for ``seconds`` if it is free, lapsed, or ``holder``'s own.

        Taking always starts a new tenure: the token grows by one (a first take gets 1).
        """
        _check_name(name)

        def op(conn: Connection) -> Taken:
            now = self._now()
            insert = self._dialect.insert(_leases).values(
                name=name, holder=holder, token=1, until=self._later(now, seconds), updated_at=now
            )
            statement = insert.on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "holder": insert.excluded.holder,
                    "token": _leases.c.token + 1,
                    "until": insert.excluded.until,
                    "updated_at": insert.excluded.updated_at,
                },
                where=or_(
                    _leases.c.holder.is_(None),
                    _leases.c.until.is_(None),
                    _leases.c.until <= now,
                    _leases.c.holder == holder,
                ),
            ).returning(_leases.c.token)
            token = conn.execute(statement).scalar()
            if token is not None:
                return Taken(int(token), holder, 0.0)
            info = self._info(conn, name)
            return Taken(None, info.holder if info else None, info.remaining if info else 0.0)

        return await self._write("take a lease", op)

    async def renew(self, name: str, holder: str, token: int, seconds: float) -> bool:
        """Extend ``holder``'s tenure ``token`` to ``seconds`` from now; false when it
        lapsed or is no longer that tenure (taken over, released)."""

        def op(conn: Connection) -> bool:
            now = self._now()
            statement = (
                update(_leases)
                .where(
                    _leases.c.name == name,
                    _leases.c.holder == holder,
                    _leases.c.token == token,
                    _leases.c.until > now,
                )
                .values(until=self._later(now, seconds), updated_at=now)
            )
            return conn.execute(statement).rowcount == 1

        return await self._write("renew a lease", op)

    async def release(self, name: str, holder: str, token: int | None = None) -> bool:
        """Give lease ``name`` up at once (a clean stop), if ``holder`` holds it (in
        tenure ``token``, when given); the token stays, so the next take grows it."""
        conditions = [_leases.c.name == name, _leases.c.holder == holder]
        if token is not None:
            conditions.append(_leases.c.token == token)

        def op(conn: Connection) -> bool:
            statement = (
                update(_leases)
                .where(*conditions)
                .values(holder=None, until=None, updated_at=self._now())
            )
            return conn.execute(statement).rowcount == 1

        return await self._write("release a lease", op)

    async def info(self, name: str) -> LeaseInfo | None:
        """Lease ``name`` as it stands, or ``None`` when it was never taken."""
        return await self._read("read a lease", lambda conn: self._info(conn, name))

    def _info(self, conn: Connection, name: str) -> LeaseInfo | None:
        query = select(_leases.c.holder, _leases.c.token, _leases.c.until, self._now())
        row = conn.execute(query.where(_leases.c.name == name)).first()
        if row is None:
            return None
        holder, token, until, now = row[0], int(row[1]), row[2], row[3]
        remaining = 0.0 if until is None else max((until - now).total_seconds(), 0.0)
        return LeaseInfo(name, holder, token, until, remaining)

    # -- job runs ------------------------------------------------------------------------

    async def last_run(self, job: str) -> datetime | None:
        """The latest due time of ``job`` that some process fired, if any."""
        query = select(func.max(_runs.c.due_at)).where(_runs.c.job == job)

        def op(conn: Connection) -> datetime | None:
            found: datetime | None = conn.execute(query).scalar()
            return found

        return await self._read("read the last job run", op)

    async def record_run(
        self, job: str, due_at: datetime, holder: str, *, fence: tuple[str, int] | None = None
    ) -> bool:
        """Record that ``holder`` fires ``job`` for ``due_at``; true only for the one
        process that recorded it first (insert-if-absent), which then fires it.

        Args:
            job: the job's name (``plugin.function``).
            due_at: the due time being fired.
            holder: the firing process.
            fence: (lease name, token): record only while ``holder`` still holds that
                lease in that tenure, so a process that lost the scheduler's lease
                cannot fire any more.
        """
        _check_name(job)

        def op(conn: Connection) -> bool:
            now = self._now()
            if fence is not None:
                lease, token = fence
                still = select(_leases.c.name).where(
                    _leases.c.name == lease,
                    _leases.c.holder == holder,
                    _leases.c.token == token,
                    _leases.c.until > now,
                )
                if conn.execute(still).first() is None:
                    return False
            statement = (
                self._dialect.insert(_runs)
                .values(job=job, due_at=due_at, holder=holder, fired_at=now)
                .on_conflict_do_nothing(index_elements=["job", "due_at"])
                .returning(_runs.c.job)
            )
            return conn.execute(statement).first() is not None

        return await self._write("record a job run", op)


def _check_name(name: str) -> None:
    if not name or len(name) > NAME_LENGTH:
        raise ValueError(f"a lease or job name must be 1-{NAME_LENGTH} characters: {name!r}")
