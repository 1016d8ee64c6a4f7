"""The database: SQLite tuned for a bot, or PostgreSQL; transactions as plain functions.

Every query runs inside an *operation*: a synchronous function of one SQLAlchemy
``Connection`` that does its statements and returns. ``Database.read(op)`` and
``Database.write(op)`` run it in a transaction and await the result:

- on SQLite, in threads of their own on the standard ``sqlite3`` driver: one hand-off
  per transaction, not several per statement as with an async driver (aiosqlite), which
  made a statement cost about 30 times what SQLite takes to run it. Writes go through
  one writer thread, and the writes that queue up while one transaction runs commit
  together in the next (group commit);
- on PostgreSQL, on asyncpg through SQLAlchemy's asyncio layer (``run_sync``), one
  transaction per write on a connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool

from botkit._faults import fault_point
from botkit.exceptions import ConfigError, StoreError
from botkit.store._batch import Batchable

if TYPE_CHECKING:
    # imported where used: a SQLite bot never needs the asyncio layer, and a database
    # already at HEAD_REVISION never needs Alembic (together ~15 MiB resident)
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Database", "Migrated", "Operation", "Synchronous", "is_sqlite"]

_MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration in migrations/versions, written down so that a start on a database
# already there never loads Alembic (tests/core/test_migrations.py checks it is the head)
HEAD_REVISION = "0008"
_WRITE = "botkit_write"
_SQLITE_READERS = 2  # threads reading an SQLite file at once (WAL lets them)
_READ_BATCH = 64  # reads that share one read transaction, at most
# the fewest operations of a kind that run as one burst (``together``): below it each runs
# its own prebuilt statements (``Direct``) in the batch's transaction, which costs less
# than the statements SQLAlchemy builds for a burst (``python -m bench --only writer``)
_TOGETHER_FROM = 16

T = TypeVar("T")
Synchronous = Literal["full", "normal"]
"""SQLite's ``synchronous`` setting as botkit offers it (``[database] synchronous``)."""
_SYNCHRONOUS: tuple[Synchronous, ...] = ("full", "normal")
Operation = Callable[[Connection], T]
"""What runs in one transaction: statements on a ``Connection``, then a result.

An operation that is :class:`~botkit.store._batch.Batchable` (its class has
``together(conn, ops) -> results``) can also run at once with the operations of its class
queued next to it, in fewer statements (say, one multi-row INSERT for a burst of accepted
messages); the results come back in the order of ``ops``.
"""


@dataclass(slots=True, eq=False)
class _Waiting(Generic[T]):
    """An operation waiting for its thread, and where its result goes."""

    op: Operation[T]
    future: asyncio.Future[T]


Outcome = tuple[bool, Any]  # (True, result) or (False, the exception)


class _Line:
    """Operations queued for a thread pool and run there in batches.

    Up to ``drainers`` batches run at once; each takes at most ``most`` operations (all
    that wait, when ``None``). ``run`` gets a batch in a thread and returns one outcome
    per operation.
    """

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        run: Callable[[list[_Waiting[Any]]], list[Outcome]],
        *,
        drainers: int,
        most: int | None,
    ) -> None:
        self._executor = executor
        self._run = run
        self._max_drainers = drainers
        self._most = most
        self._pending: list[_Waiting[Any]] = []
        self._drainers: set[asyncio.Task[None]] = set()
        # drainers started and not yet past their last look at the queue: counted here,
        # not by their tasks, whose done-callbacks run a loop turn after they stop looking
        self._active = 0

    async def submit(self, op: Operation[T]) -> T:
        """Queue ``op`` and wait for its result. A caller cancelled before its operation
        was taken withdraws it; once taken, it runs to the end all the same."""
        entry: _Waiting[T] = _Waiting(op, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        if self._active < self._max_drainers:
            self._active += 1
            task = asyncio.create_task(self._drain(), name="botkit-db")
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)
        try:
            # a cancelled caller cancels the future; the drainer then leaves it alone
            return await entry.future
        except asyncio.CancelledError:
            if entry in self._pending:  # given up before it ran: it never will
                self._pending.remove(entry)
            raise

    async def idle(self) -> None:
        """Wait until nothing is queued or running."""
        while self._drainers:
            await asyncio.gather(*list(self._drainers), return_exceptions=True)

    async def _drain(self) -> None:
        try:
            await self._drain_queue()
        finally:
            self._active -= 1  # no await since the queue was last seen empty

    async def _drain_queue(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            most = len(self._pending) if self._most is None else self._most
            batch = self._pending[:most]
            del self._pending[:most]
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run, batch)
            except Exception as exc:  # the thread could not take it: this batch fails
                outcomes = [(False, exc)] * len(batch)
            except BaseException as exc:  # the loop is going away: nobody may hang
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                raise
            for item, (ok, value) in zip(batch, outcomes, strict=True):
                if item.future.done():
                    continue
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)


class _ThreadConnections:
    """One connection per database thread, kept open from one batch to the next.

    A pool checkout and return (which rolls back) around every batch cost more than a
    small batch's statements; SQLite connections are cheap to keep. A connection that a
    failure broke is dropped, and the thread's next batch opens a new one.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._lock = threading.Lock()

    def get(self) -> Connection:
        """This thread's connection, opened if it has none that works."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._engine.connect()
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def drop(self) -> None:
        """Close this thread's connection (after a failure that may have broken it)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Close every connection opened (once the threads are done with them)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()


@dataclass(frozen=True, slots=True)
class Migrated:
    """What :meth:`Database.upgrade` did.

    Attributes:
        before: the schema's revision before (``None``: there was no schema).
        applied: the migrations applied, oldest first (empty: it was current).
        now: the schema's revision now, the newest botkit knows.
    """

    before: str | None
    applied: tuple[str, ...]
    now: str


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database."""
    return url.startswith("sqlite")


class Database:
    """One database, and the transactions botkit runs on it.

    On SQLite the file is put in WAL mode with a busy timeout (another process's writer
    is waited for), ``synchronous=FULL`` and foreign keys on; write transactions start
    with ``BEGIN IMMEDIATE`` so two writers queue for the lock at the start instead of
    one failing with "database is locked" half-way. PostgreSQL needs none of that.

    ``synchronous=FULL`` syncs the write-ahead log at every commit, so a message the
    adapter acknowledged after its commit survives a power cut; ``NORMAL`` syncs only at
    checkpoints and can lose the last commits to one (a crash of the process alone loses
    nothing either way). Group commit pays one sync per batch of writes, which keeps FULL
    cheap under load (``python -m bench --only durability``).

    Args:
        url: an SQLAlchemy URL (``sqlite:///bot.db``, ``postgresql://user@host/db``);
            the driver is chosen here (``sqlite3``, ``asyncpg``).
        busy_timeout: seconds an SQLite writer waits for another process's lock.
        synchronous: SQLite's ``synchronous`` pragma, ``"full"`` (the default) or
            ``"normal"``; PostgreSQL ignores it.
        echo: log every statement (debugging).
        connections: server connections kept open (PostgreSQL), plus up to 5 more for a
            moment.
        idle_transaction_timeout: PostgreSQL: seconds a transaction of this process may
            sit idle between its statements before the server ends it, rolling it back.
            A process frozen mid-transaction (stopped, swapped out, a debugger) would
            otherwise hold its row locks for as long as it is frozen, and every other
            process that touches those rows waits on them with a pooled connection,
            until their pools run dry.

    Raises:
        ConfigError: the URL cannot be used, or ``synchronous`` is not one of the above.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 30.0,
        synchronous: Synchronous = "full",
        echo: bool = False,
        connections: int = 5,
        idle_transaction_timeout: float = 30.0,
    ) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ConfigError(
                "database.synchronous", f"must be 'full' or 'normal', not {synchronous!r}"
            )
        self.url = _normalise(url)
        self.sqlite = is_sqlite(self.url)
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._closed = False
        memory = self.sqlite and _in_memory(self.url)
        try:
            if self.sqlite:
                self._sync = _sqlite_engine(
                    self.url, busy_timeout, synchronous, echo, memory=memory
                )
            else:
                # no pre-ping: it costs a round trip per checkout (~0.4 ms, several per
                # message); a connection the server dropped fails one operation, which
                # is retried or redelivered, and the pool replaces it
                # a pool as large as the work done at once: a smaller one with overflow
                # opens and closes a server connection (a PostgreSQL backend) per burst
                from sqlalchemy.ext.asyncio import create_async_engine

                self._async = create_async_engine(
                    self.url,
                    echo=echo,
                    pool_recycle=1800,
                    pool_size=max(connections, 1),
                    max_overflow=5,
                    connect_args=_postgres_settings(self.url, idle_transaction_timeout),
                )
        except (ArgumentError, ModuleNotFoundError) as exc:
            raise ConfigError("database.url", f"cannot use this database URL: {exc}") from exc
        if self._sync is not None:
            self._writer_conns = _ThreadConnections(self._sync.execution_options(**{_WRITE: True}))
            self._reader_conns = _ThreadConnections(self._sync)
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="botkit-db-write")
            # an in-memory database is one connection: every transaction on one thread
            self._read_threads = (
                self._write_thread
                if memory
                else ThreadPoolExecutor(_SQLITE_READERS, thread_name_prefix="botkit-db-read")
            )
            self._writes = _Line(self._write_thread, self._run_writes, drainers=1, most=None)
            self._reads = _Line(
                self._read_threads, self._run_reads, drainers=_SQLITE_READERS, most=_READ_BATCH
            )

    async def read(self, op: Operation[T]) -> T:
        """Run ``op`` in a transaction that commits nothing, and return its result.

        On SQLite, reads waiting at the same moment share one read transaction (each sees
        everything committed before it was asked for).
        """
        self._check_open()
        if self._async is not None:
            async with self._async.connect() as conn:
                return await conn.run_sync(op)
        return await self._reads.submit(op)

    async def write(self, op: Operation[T]) -> T:
        """Run ``op`` in a write transaction, committed when it returns; its result.

        On SQLite, the writes waiting at that moment commit together (group commit):
        SQLite commits one transaction at a time, so under a burst (hundreds of
        conversations at once) the commits, not the work, are the cost. Should that
        shared transaction fail, each write is retried in a transaction of its own, so
        one bad write fails alone. A caller cancelled before its write started takes it
        back; once it has started it completes (like a commit that was under way).
        """
        self._check_open()
        if self._async is not None:
            async with self._async.begin() as conn:
                result = await conn.run_sync(op)
                fault_point("pg-commit")
                return result
        return await self._writes.submit(op)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the database is closed")

    def _run_reads(self, batch: list[_Waiting[Any]]) -> list[Outcome]:
        """In a reader thread: the batch in one read transaction."""
        outcomes: list[Outcome] = []
        try:
            conn = self._reader_conns.get()
            try:
                for group in _groups(batch):
                    try:
                        outcomes += [(True, r) for r in _run_group(conn, group)]
                        continue
                    except Exception as exc:
                        conn.rollback()  # the next one starts clean
                        if len(group) == 1:
                            outcomes.append((False, exc))
                            continue
                    for item in group:  # one of them failed: each alone
                        try:
                            outcomes.append((True, item.op(conn)))
                        except Exception as alone:
                            outcomes.append((False, alone))
                            conn.rollback()
            finally:
                conn.rollback()  # the read transaction ends: the WAL can be checkpointed
        except Exception as exc:  # no connection, or it broke: the rest fail with it
            self._reader_conns.drop()
            outcomes += [(False, exc)] * (len(batch) - len(outcomes))
        return outcomes

    def _run_writes(self, batch: list[_Waiting[Any]]) -> list[Outcome]:
        """In the writer thread: the batch in one transaction, or each alone if it fails."""
        try:
            conn = self._writer_conns.get()
            with conn.begin():
                results = [(True, r) for group in _groups(batch) for r in _run_group(conn, group)]
                if len(batch) > 1:
                    fault_point("group-commit")
                return results
        except Exception as exc:
            if _broken(exc):
                self._writer_conns.drop()
            if len(batch) == 1 or _locked(exc):
                # another process holds the file: each write alone would wait as long again
                return [(False, exc)] * len(batch)
        outcomes: list[Outcome] = []
        for item in batch:  # find the write that failed; the rest succeed alone
            try:
                conn = self._writer_conns.get()
                with conn.begin():
                    outcomes.append((True, item.op(conn)))
            except Exception as alone:
                if _broken(alone):
                    self._writer_conns.drop()
                outcomes.append((False, alone))
        return outcomes

    async def upgrade(self) -> Migrated:
        """Apply every Alembic migration not yet applied (``botkit db upgrade``).

        Returns:
            The revision before, the migrations applied, the revision now.
        """
        if self._async is not None:
            async with self._async.begin() as conn:
                return await conn.run_sync(_run_upgrade)
        return await self.write(_run_upgrade)

    async def revisions(self) -> tuple[str | None, str]:
        """The schema's revision (``None``: no botkit schema) and the newest botkit
        knows; the schema is current when they are equal. Changes nothing."""
        if self._async is not None:
            async with self._async.connect() as conn:
                return await conn.run_sync(_revisions)
        return await self.read(_revisions)

    async def close(self) -> None:
        """Finish the work under way, then close every pooled connection; the database
        refuses work from then on."""
        if self._closed:
            return
        self._closed = True
        if self._async is not None:
            await self._async.dispose()
            return
        assert self._sync is not None
        await self._writes.idle()
        await self._reads.idle()
        await asyncio.get_running_loop().run_in_executor(None, self._close_sync)

    def _close_sync(self) -> None:
        assert self._sync is not None
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        self._writer_conns.close()
        self._reader_conns.close()
        self._sync.dispose()


def _broken(exc: Exception) -> bool:
    """Whether ``exc`` may have left the connection unusable (not a statement's own
    failure, such as a constraint: the transaction's rollback recovers from those)."""
    return isinstance(exc, OperationalError) and not _locked(exc)


def _locked(exc: Exception) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (the busy timeout ran out)."""
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig)


_BATCHING: dict[type, Callable[[Connection, list[Any]], list[Any]] | None] = {}


def _together(op: Any) -> Callable[[Connection, list[Any]], list[Any]] | None:
    """The ``together`` of a :class:`Batchable` operation's class, else ``None``."""
    kind = type(op)
    try:
        return _BATCHING[kind]
    except KeyError:  # once per class: a protocol check costs more than the lookup
        together = kind.together if isinstance(op, Batchable) else None
        _BATCHING[kind] = together
        return together


def _groups(batch: list[_Waiting[Any]]) -> list[list[_Waiting[Any]]]:
    """The batch cut into runs of neighbours that can run together (or alone)."""
    groups: list[list[_Waiting[Any]]] = []
    for item in batch:
        together = _together(item.op)
        if groups and together is not None and _together(groups[-1][0].op) is together:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _run_group(conn: Connection, group: list[_Waiting[Any]]) -> list[Any]:
    together = _together(group[0].op)
    if together is None or len(group) < _TOGETHER_FROM:
        return [item.op(conn) for item in group]
    results: list[Any] = together(conn, [item.op for item in group])
    return results


def _normalise(url: str) -> str:
    """Accept the plain driver names users write and pick the driver botkit runs on."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("database.url", "is not a database URL") from exc
    driver = parsed.drivername
    if driver in ("sqlite", "sqlite+aiosqlite"):
        parsed = parsed.set(drivername="sqlite+pysqlite")
    elif driver in ("postgres", "postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _postgres_settings(url: str, idle_transaction_timeout: float) -> dict[str, Any]:
    """asyncpg's connect arguments: the server settings of every botkit session."""
    if make_url(url).drivername != "postgresql+asyncpg":
        return {}  # another driver, chosen in the URL: its own settings
    idle_ms = max(int(idle_transaction_timeout * 1000), 1)
    return {"server_settings": {"idle_in_transaction_session_timeout": str(idle_ms)}}


def _in_memory(url: str) -> bool:
    database = make_url(url).database
    return not database or database == ":memory:" or "mode=memory" in url


def _make_parent_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_engine(
    url: str, busy_timeout: float, synchronous: Synchronous, echo: bool, *, memory: bool
) -> Engine:
    kwargs: dict[str, Any] = {
        "echo": echo,
        # the pool hands connections to the reader and writer threads in turn
        "connect_args": {"timeout": busy_timeout, "check_same_thread": False},
    }
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        _make_parent_dir(url)
        kwargs["pool_size"] = _SQLITE_READERS + 1
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writes can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        # on the driver's connection, as Direct statements run: no execution context,
        # statement events or result object for a statement that returns nothing
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            driver.execute(statement)
        except sqlite3.Error as exc:  # "database is locked", say: raised as SQLAlchemy's
            raise DBAPIError.instance(
                statement, (), exc, sqlite3.Error, dialect=conn.dialect
            ) from exc

    return engine


def _alembic_config(connection: Connection) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _current_revision(connection: Connection) -> str | None:
    # read directly: alembic's MigrationContext logs two INFO lines for each look
    return (
        connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if inspect(connection).has_table("alembic_version")
        else None
    )


def _revisions(connection: Connection) -> tuple[str | None, str]:
    return _current_revision(connection), HEAD_REVISION


def _run_upgrade(connection: Connection) -> Migrated:
    before = _current_revision(connection)
    if before == HEAD_REVISION:
        return Migrated(before, (), HEAD_REVISION)
    from alembic import command
    from alembic.script import ScriptDirectory

    head = HEAD_REVISION
    config = _alembic_config(connection)
    command.upgrade(config, "head")
    walked = ScriptDirectory.from_config(config).iterate_revisions(head, before)
    return Migrated(before, tuple(reversed([script.revision for script in walked])), head)
