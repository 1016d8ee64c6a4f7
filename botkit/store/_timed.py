"""What the lease and job queries share: the database, "now" by the clock their claims
are judged by, and database failures raised as ``StoreError``.

On SQLite (one machine) "now" is this process's clock, sent as a parameter; on
PostgreSQL it is the server's, so processes on several machines agree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Interval, bindparam, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from botkit.exceptions import StoreError
from botkit.store.engine import Database
from botkit.store.models import Base, utcnow

__all__ = ["TimedQueries", "short_error"]

T = TypeVar("T")

_TIME = Base.metadata.tables["leases"].c.until.type  # every claim's expiry has this type


class TimedQueries:
    """The plumbing of a store section whose rows are claimed until a time."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._dialect: Any = sqlite if database.sqlite else postgresql

    def _now(self) -> Any:
        """SQL for "now" by the clock claims are judged by (see the module docstring)."""
        if self.db.sqlite:
            return bindparam("db_now", utcnow(), type_=_TIME)
        return func.now()

    def _later(self, now: Any, seconds: float) -> Any:
        """SQL for ``seconds`` after ``now``."""
        if self.db.sqlite:
            return bindparam("later", now.value + timedelta(seconds=seconds), type_=now.type)
        return now + bindparam("span", timedelta(seconds=seconds), type_=Interval())

    async def _read(self, what: str, op: Callable[[Connection], T]) -> T:
        try:
            return await self.db.read(op)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not {what}: {short_error(exc)}") from exc

    async def _write(self, what: str, op: Callable[[Connection], T]) -> T:
        try:
            return await self.db.write(op)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not {what}: {short_error(exc)}") from exc


def short_error(exc: BaseException) -> str:
    """The first line of a database error, for a message (at most 300 characters)."""
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return text[:300]
