"""The per-message path's simplest statements, run on SQLite's own cursor.

SQLAlchemy's ``Connection.execute`` builds an execution context, dispatches events and
wraps a result for every statement, several times what SQLite takes to update one row by
its key; an answer runs several such statements, so on SQLite that was most of the
writer thread's time. A :class:`Direct` statement is compiled by SQLAlchemy once per
set of parameter names, and then run on the ``sqlite3`` connection under the same
transaction: its parameters put in order and converted by their types' own bind
processors, its rows by their result processors, its errors wrapped as SQLAlchemy's
(``OperationalError``, ``IntegrityError``), so callers see what they saw before.

Only statements that SQLAlchemy would run unchanged qualify: no expanding ``IN`` list
(refused), and an INSERT or UPDATE only when its parameters name every column that has a
default (SQLAlchemy computes the others' at execution: it runs that statement, for those
parameter names). On PostgreSQL, with ``echo`` on, or while anything listens to the
cursor's statements (tests that count them), SQLAlchemy runs them as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

__all__ = ["Direct"]

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for SQLite and one set of parameter names."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the order of their ``?``
    converted: tuple[tuple[int, Processor], ...]  # (index, its type's bind processor)
    fixed: Mapping[str, Any]  # the values written into the statement (``status != 'x'``)
    results: tuple[tuple[int, Processor], ...]  # (column index, result processor)
    returning: bool  # whether it gives rows back (a SELECT, or RETURNING)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        try:  # the usual case: the caller gives every parameter
            values = [params[n] for n in self.names]
        except KeyError:
            fixed = self.fixed
            values = [params[n] if n in params else fixed[n] for n in self.names]
        # None too: a JSON column stores it as JSON's null, as SQLAlchemy does
        for index, process in self.converted:
            values[index] = process(values[index])
        return values


class Direct:
    """A prebuilt statement that runs on the ``sqlite3`` cursor where it can (see the
    module); elsewhere through SQLAlchemy, with the same results."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, ...], _Plan | None] = {}  # None: SQLAlchemy runs it

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run it (an UPDATE or DELETE); how many rows it changed."""
        plan = self._plan(conn, params)
        if plan is None:
            return int(getattr(conn.execute(self.statement, dict(params)), "rowcount", 0) or 0)
        return self._execute(conn, plan, _arguments(conn, plan, params)).rowcount

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Run it (a SELECT, or a statement with RETURNING); its rows, each column as its
        type reads it."""
        plan = self._plan(conn, params)
        if plan is None:
            return list(conn.execute(self.statement, dict(params)).all())
        rows = self._execute(conn, plan, _arguments(conn, plan, params)).fetchall()
        if not plan.results:
            return rows
        out: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for index, process in plan.results:
                values[index] = process(values[index])
            out.append(values)
        return out

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run it; the first column of its first row (``None``: no row)."""
        rows = self.rows(conn, params)
        return rows[0][0] if rows else None

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it once for each of ``rows`` (an INSERT or UPDATE without RETURNING), in
        one call to the driver."""
        if not rows:
            return
        keys = tuple(rows[0])
        plan = self._plan(conn, rows[0])
        if plan is None or plan.returning or any(tuple(row) != keys for row in rows):
            conn.execute(self.statement, [dict(row) for row in rows])
            return
        arguments = [_arguments(conn, plan, row) for row in rows]
        self._execute(conn, plan, arguments, many=True)

    def _execute(
        self, conn: Connection, plan: _Plan, arguments: Any, *, many: bool = False
    ) -> sqlite3.Cursor:
        if not conn.in_transaction():
            conn.begin()  # as SQLAlchemy's own first statement would (BEGIN)
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            if many:
                return driver.executemany(plan.sql, arguments)
            return driver.execute(plan.sql, arguments)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(
                plan.sql, arguments, exc, sqlite3.Error, dialect=conn.dialect, ismulti=many
            ) from exc

    def _plan(self, conn: Connection, params: Mapping[str, Any]) -> _Plan | None:
        """The plan for these parameter names, or ``None`` where SQLAlchemy must run it."""
        if not _direct(conn):
            return None
        keys = tuple(params)
        if keys not in self._plans:
            self._plans[keys] = _compile(self.statement, conn, keys)
        return self._plans[keys]


def _arguments(conn: Connection, plan: _Plan, params: Mapping[str, Any]) -> list[Any]:
    """The statement's arguments; a value its type refuses (a naive datetime, say) is
    raised as SQLAlchemy raises it, a ``StatementError``."""
    try:
        return plan.arguments(params)
    except Exception as exc:
        raise DBAPIError.instance(
            plan.sql, dict(params), exc, sqlite3.Error, dialect=conn.dialect
        ) from exc


def _direct(conn: Connection) -> bool:
    """Whether statements on ``conn`` may skip SQLAlchemy: SQLite, with nothing watching."""
    dialect = conn.dialect
    return (
        dialect.name == "sqlite"
        and dialect.paramstyle == "qmark"
        and not conn.engine.echo
        and not conn.dispatch.before_cursor_execute
        and not conn.dispatch.after_cursor_execute
    )


def _compile(statement: Executable, conn: Connection, keys: tuple[str, ...]) -> _Plan | None:
    dialect = conn.dialect
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    if compiled.positiontup is None or "POSTCOMPILE" in compiled.string:
        raise TypeError(f"cannot run directly: {compiled.string}")
    defaults = (
        getattr(compiled, n, None) for n in ("insert_prefetch", "update_prefetch", "postfetch")
    )
    if any(defaults):
        return None  # defaults to compute, or to read back: SQLAlchemy's work
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names = tuple(compiled.positiontup)
    fixed = {n: by_name[n].effective_value for n in names if not by_name[n].required}
    processors = (by_name[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
    converted = tuple((i, p) for i, p in enumerate(processors) if p is not None)
    results: list[tuple[int, Processor]] = []
    returned = compiled.returning or getattr(statement, "selected_columns", ())
    for index, column in enumerate(returned):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            results.append((index, process))
    returning = bool(returned)
    return _Plan(compiled.string, names, converted, fixed, tuple(results), returning)
