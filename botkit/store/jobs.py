"""Scheduled jobs: the queries behind ``ctx.schedule`` and the scheduler that fires them.

A job is a row of ``scheduled_jobs``. The scheduler *claims* the due ones: one UPDATE
turns them from ``pending`` (or ``running`` with a lapsed claim: its process died) to
``running``, held by one process until ``claimed_until``, with a fencing token one
higher than before. The claim's condition is checked again on the row itself, so two
processes never both claim a job, and it is fenced by the scheduler's lease as well.
Finishing a job is conditional on the (holder, token) it was claimed with, and stores
the replies the job sent in the same transaction: a process that lost the job (it
stalled past its claim) stores nothing.

Due times are judged by the scheduler's clock (given as ``now``: a test's clock may
move on demand); claims lapse by the database's clock, as leases do (PostgreSQL's
``now()``; SQLite, one process, uses that process's clock).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    update,
)

from botkit.exceptions import ClaimLostError
from botkit.messages import ConversationRef
from botkit.store._timed import TimedQueries
from botkit.store.engine import Database
from botkit.store.models import Base, utcnow

__all__ = ["ACTIVE", "JobRecord", "JobStore", "NewJob"]

T = TypeVar("T")
_jobs = Base.metadata.tables["scheduled_jobs"]
_conversations = Base.metadata.tables["conversations"]
_leases = Base.metadata.tables["leases"]
#: Statuses of a job that will still fire (or is firing now).
ACTIVE = ("pending", "running")
ReplyWriter = Callable[[Connection, Any], int]


@dataclasses.dataclass(frozen=True, slots=True)
class NewJob:
    """A job to store (``JobStore.add``)."""

    plugin: str
    job: str
    due_at: datetime
    data: Any = None
    conversation_id: int | None = None
    every_seconds: float | None = None
    cron: str | None = None
    timezone: str | None = None
    key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class JobRecord:
    """A stored job, as the scheduler and ``ctx.pending_jobs()`` see it.

    Attributes:
        attempts: tries of the current due time so far (a claim counts as one).
        runs: due times fired and finished, in all (recurring jobs).
        claim_token: the fencing token of its latest claim.
    """

    id: int
    plugin: str
    job: str
    due_at: datetime
    data: Any
    conversation: ConversationRef | None
    conversation_id: int | None
    every_seconds: float | None
    cron: str | None
    timezone: str | None
    status: str
    attempts: int
    runs: int
    claim_token: int
    key: str | None
    error: str | None
    created_at: datetime


_RECORD = (
    _jobs.c.id,
    _jobs.c.plugin,
    _jobs.c.job,
    _jobs.c.due_at,
    _jobs.c.data,
    _conversations.c.channel,
    _conversations.c.chat_id,
    _conversations.c.thread_id,
    _jobs.c.conversation_id,
    _jobs.c.every_seconds,
    _jobs.c.cron,
    _jobs.c.timezone,
    _jobs.c.status,
    _jobs.c.attempts,
    _jobs.c.runs,
    _jobs.c.claim_token,
    _jobs.c.key,
    _jobs.c.error,
    _jobs.c.created_at,
)
_RECORDS = select(*_RECORD).select_from(
    _jobs.outerjoin(_conversations, _conversations.c.id == _jobs.c.conversation_id)
)


def _record(row: Any) -> JobRecord:
    (id_, plugin, job, due_at, data, channel, chat_id, thread_id, conversation_id) = row[:9]
    ref = None if channel is None else ConversationRef(channel, chat_id, thread_id)
    return JobRecord(id_, plugin, job, due_at, data, ref, conversation_id, *row[9:])


class JobStore(TimedQueries):
    """The scheduled-job queries; ``Store.jobs``. Every method is one transaction and
    raises ``StoreError`` when the database fails.

    Args:
        database: the database.
        write_reply: stores one ``OutboundDraft`` in the outbox on a connection (the
            store's own), so a job's replies commit with its completion.
    """

    def __init__(self, database: Database, write_reply: ReplyWriter) -> None:
        super().__init__(database)
        self._write_reply = write_reply

    async def add(self, job: NewJob) -> int:
        """Store a pending job; its id. With a ``key`` already used by the plugin's
        jobs, that job's id instead (nothing is added)."""
        now = utcnow()
        values = {
            **dataclasses.asdict(job),
            "status": "pending",
            "attempts": 0,
            "runs": 0,
            "claim_token": 0,
            "created_at": now,
            "updated_at": now,
        }

        def op(conn: Connection) -> int:
            statement = self._dialect.insert(_jobs).values(values)
            if job.key is not None:
                statement = statement.on_conflict_do_nothing(index_elements=["plugin", "key"])
            found = conn.execute(statement.returning(_jobs.c.id)).scalar()
            if found is None:  # the key was taken
                found = conn.execute(
                    select(_jobs.c.id).where(_jobs.c.plugin == job.plugin, _jobs.c.key == job.key)
                ).scalar_one()
            return int(found)

        return await self._write("schedule a job", op)

    async def cancel(self, plugin: str, job_id: int) -> bool:
        """Cancel one of ``plugin``'s jobs that will still fire; false when it has no
        such job (unknown, another plugin's, finished or cancelled). A job firing right
        now finishes this run, and does not recur."""
        statement = (
            update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.plugin == plugin, _jobs.c.status.in_(ACTIVE))
            .values(status="cancelled", updated_at=utcnow())
        )
        return await self._write(
            "cancel a job", lambda conn: conn.execute(statement).rowcount == 1
        )

    async def get(self, job_id: int) -> JobRecord | None:
        """One job as it stands, whatever its status."""
        query = _RECORDS.where(_jobs.c.id == job_id)

        def op(conn: Connection) -> JobRecord | None:
            row = conn.execute(query).first()
            return None if row is None else _record(row)

        return await self._read("read a job", op)

    async def pending(
        self,
        plugin: str,
        *,
        job: str | None = None,
        conversation_id: int | None = None,
        limit: int = 1000,
    ) -> list[JobRecord]:
        """``plugin``'s jobs that will still fire, soonest first."""
        query = _RECORDS.where(_jobs.c.plugin == plugin, _jobs.c.status.in_(ACTIVE))
        if job is not None:
            query = query.where(_jobs.c.job == job)
        if conversation_id is not None:
            query = query.where(_jobs.c.conversation_id == conversation_id)
        query = query.order_by(_jobs.c.due_at, _jobs.c.id).limit(limit)
        return await self._read(
            "list jobs", lambda conn: [_record(r) for r in conn.execute(query).all()]
        )

    async def next_due(self, plugins: Collection[str]) -> datetime | None:
        """The earliest due time of the pending jobs of ``plugins``."""
        query = select(func.min(_jobs.c.due_at)).where(
            _jobs.c.status == "pending", _jobs.c.plugin.in_(sorted(plugins))
        )

        def op(conn: Connection) -> datetime | None:
            found: datetime | None = conn.execute(query).scalar()
            return found

        return await self._read("read the next due job", op)

    async def claim_due(
        self,
        *,
        now: datetime,
        plugins: Collection[str],
        holder: str,
        seconds: float,
        limit: int,
        fence: tuple[str, int] | None = None,
    ) -> list[JobRecord]:
        """Claim up to ``limit`` jobs of ``plugins`` due by ``now`` (and those whose
        claim lapsed), soonest first, for ``seconds``; each claim counts as an attempt.

        Args:
            fence: (lease name, token): claim only while ``holder`` still holds the
                scheduler's lease in that tenure.
        """

        def op(conn: Connection) -> list[JobRecord]:
            db_now = self._now()
            if fence is not None and not _still_holds(conn, fence, holder, db_now):
                return []
            claimable = and_(
                _jobs.c.plugin.in_(sorted(plugins)),
                or_(
                    and_(_jobs.c.status == "pending", _jobs.c.due_at <= now),
                    and_(_jobs.c.status == "running", _jobs.c.claimed_until <= db_now),
                ),
            )
            candidates = select(_jobs.c.id).where(claimable).order_by(_jobs.c.due_at).limit(limit)
            if not self.db.sqlite:  # another scheduler's claim in flight: not waited for
                candidates = candidates.with_for_update(skip_locked=True)
            ids = list(conn.execute(candidates).scalars())
            if not ids:
                return []
            claimed = conn.execute(
                update(_jobs)
                .where(_jobs.c.id.in_(ids), claimable)  # checked again on the row itself
                .values(
                    status="running",
                    claimed_by=holder,
                    claimed_until=self._later(db_now, seconds),
                    claim_token=_jobs.c.claim_token + 1,
                    attempts=_jobs.c.attempts + 1,
                    updated_at=utcnow(),
                )
                .returning(_jobs.c.id)
            )
            taken = list(claimed.scalars())
            if not taken:
                return []
            rows = conn.execute(_RECORDS.where(_jobs.c.id.in_(taken)).order_by(_jobs.c.due_at))
            return [_record(r) for r in rows.all()]

        return await self._write("claim due jobs", op)

    async def renew(self, job_id: int, holder: str, token: int, seconds: float) -> bool:
        """Extend the claim (holder, token) on a running job; false when it is lost."""

        def op(conn: Connection) -> bool:
            db_now = self._now()
            statement = (
                update(_jobs)
                .where(
                    _jobs.c.id == job_id,
                    _jobs.c.claimed_by == holder,
                    _jobs.c.claim_token == token,
                    _jobs.c.status.in_(("running", "cancelled")),
                )
                .values(claimed_until=self._later(db_now, seconds))
            )
            return conn.execute(statement).rowcount == 1

        return await self._write("renew a job's claim", op)

    async def finish(
        self,
        job_id: int,
        fence: tuple[str, int],
        *,
        status: str,
        due_at: datetime | None = None,
        error: str | None = None,
        replies: Sequence[Any] = (),
        ran: bool = True,
    ) -> list[int]:
        """End a run of a job claimed with ``fence`` (holder, token), and store the
        replies it sent (``OutboundDraft``\\ s) with it; the replies' outbox ids.

        Args:
            status: ``"done"``, ``"failed"``, or ``"pending"`` to fire again at
                ``due_at`` (a retry, or the next time of a recurring job). A job
                cancelled while it ran stays cancelled.
            due_at: the next due time, for ``"pending"``.
            error: why it failed, kept with the job.
            replies: what the run sent, stored in this transaction.
            ran: a due time was fired (``runs`` grows, ``attempts`` restarts when
                it is due again).

        Raises:
            ClaimLostError: another process holds the job now (or it was never
                claimed with ``fence``); nothing was stored.
        """
        holder, token = fence
        values: dict[str, Any] = {
            "status": case((_jobs.c.status == "cancelled", "cancelled"), else_=status),
            "claimed_by": None,
            "claimed_until": None,
            "error": error,
            "updated_at": utcnow(),
        }
        if due_at is not None:
            values["due_at"] = due_at
        if ran:
            values["runs"] = _jobs.c.runs + 1
            if status == "pending":
                values["attempts"] = 0
        statement = (
            update(_jobs)
            .where(
                _jobs.c.id == job_id,
                _jobs.c.claimed_by == holder,
                _jobs.c.claim_token == token,
                _jobs.c.status.in_(("running", "cancelled")),
            )
            .values(values)
        )

        def op(conn: Connection) -> list[int]:
            if conn.execute(statement).rowcount != 1:
                raise ClaimLostError(
                    f"job {job_id} is no longer held by {holder} with token {token}"
                )
            return [self._write_reply(conn, reply) for reply in replies]

        return await self._write("finish a job", op)

    async def release(self, job_id: int, fence: tuple[str, int]) -> bool:
        """Give a running job back (a clean stop cut it short): due again at once,
        this try not counted; false when it was not held with ``fence``."""
        holder, token = fence
        statement = (
            update(_jobs)
            .where(
                _jobs.c.id == job_id,
                _jobs.c.claimed_by == holder,
                _jobs.c.claim_token == token,
                _jobs.c.status.in_(("running", "cancelled")),
            )
            .values(
                status=case((_jobs.c.status == "cancelled", "cancelled"), else_="pending"),
                attempts=_jobs.c.attempts - 1,
                claimed_by=None,
                claimed_until=None,
                updated_at=utcnow(),
            )
        )
        return await self._write(
            "release a job", lambda conn: conn.execute(statement).rowcount == 1
        )

    async def prune(self, before: datetime) -> int:
        """Delete jobs that ended (done, failed, cancelled) before ``before``."""
        statement = delete(_jobs).where(
            _jobs.c.status.in_(("done", "failed", "cancelled")), _jobs.c.updated_at < before
        )
        return await self._write("prune jobs", lambda conn: int(conn.execute(statement).rowcount))


def _still_holds(conn: Connection, fence: tuple[str, int], holder: str, now: Any) -> bool:
    lease, token = fence
    query = select(_leases.c.name).where(
        _leases.c.name == lease,
        _leases.c.holder == holder,
        _leases.c.token == token,
        _leases.c.until > now,
    )
    return conn.execute(query).first() is not None
