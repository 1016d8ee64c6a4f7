"""Creating the async engine (SQLite tuned for a bot, or PostgreSQL) and migrating it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from botkit.exceptions import ConfigError

__all__ = ["Database", "is_sqlite"]

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "botkit_write"


T = TypeVar("T")


@dataclass(slots=True, eq=False)
class _Write(Generic[T]):
    """A write waiting for the next group commit, and where its result goes."""

    op: Callable[[AsyncSession], Awaitable[T]]
    future: asyncio.Future[T]


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database."""
    return url.startswith("sqlite")


class Database:
    """An async engine with two kinds of session: reads, and writes that lock up front.

    On SQLite the file is put in WAL mode with a busy timeout, and write transactions
    start with ``BEGIN IMMEDIATE`` so two writers queue for the lock at the start instead
    of one failing with "database is locked" half-way. PostgreSQL needs none of that.

    Args:
        url: an SQLAlchemy async URL (``sqlite+aiosqlite:///bot.db``,
            ``postgresql+asyncpg://user@host/db``).
        busy_timeout: seconds an SQLite writer waits for the lock.
        echo: log every statement (debugging).
    """

    def __init__(self, url: str, *, busy_timeout: float = 30.0, echo: bool = False) -> None:
        self.url = _normalise(url)
        self.sqlite = is_sqlite(self.url)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.sqlite:
            kwargs["connect_args"] = {"timeout": busy_timeout}
            _make_parent_dir(self.url)
        else:
            # no pre-ping: it costs a round trip per checkout (~0.4 ms, several per
            # message); a connection the server dropped fails one operation, which is
            # retried or redelivered, and the pool replaces it
            kwargs["pool_recycle"] = 1800
        try:
            self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        except (ArgumentError, ModuleNotFoundError) as exc:
            raise ConfigError("database.url", f"cannot use this database URL: {exc}") from exc
        if self.sqlite:
            _tune_sqlite(self.engine, busy_timeout)
        self._write_queue = asyncio.Lock() if self.sqlite else None
        self._pending: list[_Write[Any]] = []
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing it does is committed."""
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction, committed when the block ends cleanly.

        On SQLite, writers of this process queue here, in order, before asking for the
        file lock: SQLite makes waiting writers sleep and retry (1, 2, 5... 100 ms), which
        under a burst of hundreds of conversations costs far more than the writes.
        """
        if self._write_queue is None:
            async with self._writer() as session, session.begin():
                yield session
            return
        async with self._write_queue, self._writer() as session, session.begin():
            yield session

    async def run_write(self, op: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``op`` in a write transaction; on SQLite, together with the other writes
        waiting at that moment (group commit).

        SQLite commits one transaction at a time, so under a burst (hundreds of
        conversations at once) the commits, not the work, are the cost: the writes that
        queue up while one transaction runs all go into the next. Should that shared
        transaction fail, each write is retried in a transaction of its own, so one bad
        write fails alone. On PostgreSQL every write keeps its own transaction.
        """
        if self._write_queue is None:
            async with self._writer() as session, session.begin():
                return await op(session)
        entry: _Write[T] = _Write(op, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        try:
            async with self._write_queue:
                if not entry.future.done():  # nobody ran it yet: lead the next batch
                    batch, self._pending = self._pending, []
                    await self._run_batch(batch, entry)
        except asyncio.CancelledError:
            if entry in self._pending:  # given up before it ran: it never will
                self._pending.remove(entry)
            raise
        return await entry.future

    async def _run_batch(self, batch: list[_Write[Any]], leader: _Write[Any]) -> None:
        try:
            try:
                async with self._writer() as session, session.begin():
                    results = [await item.op(session) for item in batch]
            except Exception as exc:
                if len(batch) == 1:
                    leader.future.set_exception(exc)
                    return
                for item in batch:  # find the write that failed; the rest succeed alone
                    try:
                        async with self._writer() as session, session.begin():
                            result = await item.op(session)
                    except Exception as alone:
                        item.future.set_exception(alone)
                    else:
                        item.future.set_result(result)
                return
            for item, result in zip(batch, results, strict=True):
                item.future.set_result(result)
        except asyncio.CancelledError:
            # the leader was cancelled: what it had not finished goes back to the head of
            # the line, for the next writer to take
            self._pending[:0] = [i for i in batch if i is not leader and not i.future.done()]
            raise

    async def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied (``botkit db upgrade``)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_upgrade)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _normalise(url: str) -> str:
    """Accept the plain driver names users write and pick the async driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("database.url", "is not a database URL") from exc
    driver = parsed.drivername
    if driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgres", "postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _make_parent_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(engine: AsyncEngine, busy_timeout: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writes can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _run_upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")
