"""What every section of the store shares: the database, its dialect, "now" as claims
judge it, and driver errors raised as ``StoreError``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, String, Table, func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from botkit.exceptions import StoreError, StoreUnavailableError
from botkit.store._statements import messages
from botkit.store.engine import Database

T = TypeVar("T")


class Section:
    """One part of the store (inbound, outbound, history...) over the shared database.

    Every method of a section runs in its own transaction (an operation of ``Database``)
    and raises ``StoreError`` (with the driver's error as its cause) when the database
    fails.
    """

    def __init__(self, database: Database) -> None:
        self.db = database
        self._dialect: Any = sqlite if database.sqlite else postgresql

    def _free(self, now: datetime) -> Any:
        """SQL: the message is unclaimed, or its claim lapsed. Judged by the database's
        clock on PostgreSQL (several processes, several clocks); SQLite serves one
        process, so its clock is that process's, ``now``."""
        current: Any = now if self.db.sqlite else func.now()
        return or_(messages.c.claimed_by.is_(None), messages.c.claimed_until < current)

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

    async def _read(self, what: str, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in a read transaction; a driver error becomes a ``StoreError``."""
        try:
            return await self.db.read(op)
        except (SQLAlchemyError, OSError) as exc:
            raise store_error(what, exc) from exc

    async def _write(self, what: str, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in a (group-committed, on SQLite) write transaction."""
        try:
            return await self.db.write(op)
        except (SQLAlchemyError, OSError) as exc:
            raise store_error(what, exc) from exc


def short_error(exc: BaseException) -> str:
    """The first line of a database error, for a message (at most 300 characters)."""
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return text[:300]


def store_error(what: str, exc: BaseException) -> StoreError:
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
