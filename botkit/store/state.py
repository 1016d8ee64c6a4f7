"""Plugins' and adapters' own persisted JSON values, by namespace: read, set (for a
while, or for good), changed atomically, and pruned once expired."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Interval, bindparam, case, delete, func, or_, select, update

from botkit.exceptions import StoreError
from botkit.store._section import Section
from botkit.store._statements import STILL_HELD, held_params, rowcount, run_fenced, state
from botkit.store.models import utcnow
from botkit.store.records import Fence

__all__ = ["NamespaceState", "StateStore", "Ttl"]

Ttl = float | timedelta
"""How long a key lives: seconds, or a ``timedelta``."""

_TIME = state.c.expires_at.type
_KEEP = object()  # update() without a ttl: a live key keeps the expiry it had


class StateStore(Section):
    """The ``state`` table: one JSON value per (namespace, key), with an optional expiry
    judged by the database's clock (the process's own on SQLite, which serves one)."""

    def _now(self) -> Any:
        if self.db.sqlite:
            return bindparam("b_now", utcnow(), type_=_TIME)
        return func.now()

    def _expiry(self, ttl: Ttl | None) -> Any:
        """SQL for when a key set now with ``ttl`` expires (``None``: never)."""
        if ttl is None:
            return None
        span = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
        if self.db.sqlite:
            return utcnow() + span
        return func.now() + bindparam("b_ttl", span, type_=Interval())

    def _live(self) -> Any:
        return or_(state.c.expires_at.is_(None), state.c.expires_at > self._now())

    def _row(self, namespace: str, key: str) -> Any:
        return (state.c.namespace == namespace) & (state.c.key == key)

    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """Whether ``key`` is set (and not expired) in ``namespace``, and its value."""
        query = select(state.c.value).where(self._row(namespace, key), self._live())

        def op(conn: Connection) -> tuple[bool, Any]:
            row = conn.execute(query).first()
            return (False, None) if row is None else (True, row[0])

        return await self._read("read state", op)

    async def keys(self, namespace: str, prefix: str = "") -> list[str]:
        """The live keys of ``namespace`` that start with ``prefix``, sorted."""
        query = select(state.c.key).where(state.c.namespace == namespace, self._live())
        if prefix:
            query = query.where(state.c.key.startswith(prefix, autoescape=True))
        query = query.order_by(state.c.key)

        def op(conn: Connection) -> list[str]:
            return [str(key) for key in conn.execute(query).scalars()]

        return await self._read("list state keys", op)

    async def set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: Ttl | None = None,
        held: tuple[str, Fence] | None = None,
    ) -> None:
        """Store a JSON-serialisable value, gone after ``ttl`` when given; with ``held``,
        only while those messages are still held (as ``OutboundStore.add``), else
        ``ClaimLostError`` and nothing stored."""
        value = _snapshot(value)
        now = utcnow()
        expires = self._expiry(ttl)
        query = (
            self._dialect.insert(state)
            .values(namespace=namespace, key=key, value=value, updated_at=now, expires_at=expires)
            .on_conflict_do_update(
                index_elements=["namespace", "key"],
                set_={"value": value, "updated_at": now, "expires_at": expires},
            )
        )
        holds = held_params(held)

        def op(conn: Connection) -> None:
            run_fenced(conn, STILL_HELD, holds)
            conn.execute(query)

        await self._write("write state", op)

    async def update(
        self,
        namespace: str,
        key: str,
        change: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: Ttl | None = None,
    ) -> Any:
        """Replace a key's value by ``change(value)`` in one transaction, the row locked
        meanwhile (PostgreSQL) or the write serialised (SQLite): concurrent updates of
        one key each see the one before. See ``NamespaceState.update``."""
        start = _snapshot(default)
        now = utcnow()
        expires = _KEEP if ttl is None else self._expiry(ttl)
        where = self._row(namespace, key)
        live = case((self._live(), True), else_=False)
        read = select(state.c.value, live).where(where).with_for_update()
        insert = (
            self._dialect.insert(state)
            .on_conflict_do_nothing(index_elements=["namespace", "key"])
            .returning(state.c.key)
        )
        fresh = None if expires is _KEEP else expires

        def op(conn: Connection) -> Any:
            while True:
                found = conn.execute(read).first()
                if found is not None:
                    value = _snapshot(change(found[0] if found[1] else _copy(start)))
                    values = {"value": value, "updated_at": now}
                    if expires is not _KEEP:
                        values["expires_at"] = expires
                    elif not found[1]:  # expired: it starts afresh, for good
                        values["expires_at"] = None
                    conn.execute(update(state).where(where).values(**values))
                    return value
                value = _snapshot(change(_copy(start)))
                row = {"namespace": namespace, "key": key, "value": value}
                row |= {"updated_at": now, "expires_at": fresh}
                if conn.execute(insert.values(**row)).first() is not None:
                    return value
                # another writer created it meanwhile (and has committed): read it again

        return await self._write("update state", op)

    async def delete(self, namespace: str, key: str) -> None:
        """Forget a key; no error when it was not set."""
        query = delete(state).where(self._row(namespace, key))
        await self._write("delete state", lambda conn: conn.execute(query))

    async def prune(self) -> int:
        """Delete every expired key, of every namespace; returns how many."""
        query = delete(state).where(state.c.expires_at <= self._now())
        return await self._write("prune state", rowcount(query))


class NamespaceState:
    """``KeyValueState`` over the store's ``state`` table: one namespace of it."""

    def __init__(self, section: StateStore, namespace: str) -> None:
        self._section = section
        self.namespace = namespace

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` (also once it expired)."""
        found, value = await self._section.get(self.namespace, key)
        return value if found else default

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: Ttl | None = None,
        held: tuple[str, Fence] | None = None,
    ) -> None:
        """Store a JSON-serialisable value under ``key``; with ``ttl`` (seconds or a
        ``timedelta``) it is gone that long after, by the database's clock, and pruned
        later. ``held``: store it only while those messages are held (the core's)."""
        await self._section.set(self.namespace, key, value, ttl=ttl, held=held)

    async def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: Ttl | None = None,
    ) -> Any:
        """Replace the value under ``key`` by ``change(value)``, atomically: whatever
        other processes update meanwhile, each change sees the value the one before it
        left (a counter counts every increment).

        ``change`` gets the value (``default`` when the key is not set or expired) and
        returns the new one, JSON-serialisable. It runs inside the transaction, in the
        database's thread: keep it a quick, plain function (no I/O, no awaiting), and
        expect it to run again if the transaction is retried. If it raises, nothing
        changes and the exception propagates.

        With ``ttl`` the key expires that long after this update; without, a key that
        was live keeps its expiry, and one created now never expires.

        Returns:
            The new value.
        """
        return await self._section.update(self.namespace, key, change, default=default, ttl=ttl)

    async def delete(self, key: str) -> None:
        """Forget ``key``; no error when it was not there."""
        await self._section.delete(self.namespace, key)

    async def keys(self, prefix: str = "") -> list[str]:
        """The live keys that start with ``prefix`` (taken literally), sorted."""
        return await self._section.keys(self.namespace, prefix)


def _snapshot(value: Any) -> Any:
    """A JSON copy of ``value``, taken here: the caller keeps its own object."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"could not write state: the value is not JSON ({exc})") from exc


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))
