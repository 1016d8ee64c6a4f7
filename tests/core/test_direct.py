"""Statements run on SQLite's own cursor (``botkit.store._direct``) give what SQLAlchemy
gives for them: the same rows, the same row counts, the same errors, in the same
transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, insert, update
from sqlalchemy.exc import IntegrityError, StatementError

from botkit.store._direct import Direct
from botkit.store._statements import _HISTORY, UPDATE_MESSAGE, conversations, messages
from botkit.store.models import Base

WHEN = datetime(2026, 12, 5, 7, 30, 1, 250_000, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    engine = create_engine(f"sqlite:///{tmp_path / 'direct.db'}")
    Base.metadata.create_all(engine)
    with engine.connect() as connection:
        connection.execute(insert(conversations).values(id=1, key="t:c", channel="t", chat_id="c"))
        for i, (direction, status) in enumerate(
            [("in", "done"), ("out", "delivered"), ("in", "failed"), ("in", "processing")], 1
        ):
            connection.execute(
                insert(messages).values(
                    id=i,
                    conversation_id=1,
                    channel="t",
                    direction=direction,
                    external_id=f"e{i}",
                    text=f"turn {i}",
                    status=status,
                    meta={"n": i, "tags": ["a", "é"]},
                    attachments=[{"name": "f.txt"}] if i == 2 else [],
                    next_attempt_at=WHEN if i == 1 else None,
                    created_at=WHEN,
                )
            )
        connection.commit()
        yield connection
    engine.dispose()


def _history(conn: Connection, *, direct: bool) -> list[tuple[Any, ...]]:
    params = {"b_conversation_id": 1, "b_after_id": 0, "b_limit": 10}
    if direct:
        return [tuple(row) for row in _HISTORY.rows(conn, params)]
    return [tuple(row) for row in conn.execute(_HISTORY.statement, params).all()]


def test_a_direct_select_reads_the_rows_sqlalchemy_reads(conn: Connection) -> None:
    through_sqlalchemy = _history(conn, direct=False)
    direct = _history(conn, direct=True)
    assert direct == through_sqlalchemy
    assert [row[0] for row in direct] == [4, 2, 1]  # its WHERE's fixed values applied
    newest_in = direct[-1]
    assert newest_in[14] == WHEN  # a timestamp read back by its type, aware
    assert newest_in[16] == {"n": 1, "tags": ["a", "é"]}  # JSON read back
    assert direct[1][17] == [{"name": "f.txt"}]


def test_a_direct_update_changes_what_sqlalchemy_would_and_converts_its_values(
    conn: Connection,
) -> None:
    statement = Direct(UPDATE_MESSAGE)
    later = datetime(2026, 12, 6, tzinfo=UTC)
    changed = statement.rowcount(
        conn, {"status": "context", "meta": {"k": [1]}, "updated_at": later, "b_id": 3}
    )
    assert changed == 1
    assert statement.rowcount(conn, {"status": "x", "b_id": 99}) == 0  # no such row
    row = conn.execute(
        messages.select().where(messages.c.id == 3)
    ).one()  # read back through SQLAlchemy: stored as its types store them
    assert (row.status, row.meta, row.updated_at) == ("context", {"k": [1]}, later)


def test_a_none_is_stored_as_sqlalchemy_stores_it(conn: Connection) -> None:
    # a JSON column keeps Python's None as JSON's null (SQLAlchemy's default), a
    # timestamp as NULL: the same raw values whichever way the update went
    Direct(UPDATE_MESSAGE).rowcount(conn, {"meta": None, "next_attempt_at": None, "b_id": 1})
    conn.execute(UPDATE_MESSAGE, {"meta": None, "next_attempt_at": None, "b_id": 2})
    raw = conn.exec_driver_sql(
        "SELECT id, meta, next_attempt_at FROM messages WHERE id IN (1, 2) ORDER BY id"
    ).all()
    assert [tuple(r[1:]) for r in raw] == [("null", None), ("null", None)]


def test_a_direct_statement_joins_the_transaction_under_way(conn: Connection) -> None:
    statement = Direct(UPDATE_MESSAGE)
    assert not conn.in_transaction()
    statement.rowcount(conn, {"text": "edited", "b_id": 1})
    assert conn.in_transaction()  # begun as SQLAlchemy's own first statement would
    conn.rollback()
    assert conn.execute(messages.select().where(messages.c.id == 1)).one().text == "turn 1"


def test_a_direct_statements_error_is_sqlalchemys(conn: Connection) -> None:
    statement = Direct(UPDATE_MESSAGE)
    # e1 is taken by message 1 on the same channel and direction: a unique constraint
    with pytest.raises(IntegrityError) as raised:
        statement.rowcount(conn, {"external_id": "e1", "b_id": 3})
    assert "UNIQUE" in str(raised.value.orig)


def test_a_value_its_type_refuses_is_sqlalchemys_statement_error(conn: Connection) -> None:
    statement = Direct(UPDATE_MESSAGE)
    naive = datetime(2026, 12, 5, 7, 30)  # a timestamp column takes only aware ones
    with pytest.raises(StatementError) as through_sqlalchemy:
        conn.execute(UPDATE_MESSAGE, {"updated_at": naive, "b_id": 1})
    conn.rollback()
    with pytest.raises(StatementError) as direct:
        statement.rowcount(conn, {"updated_at": naive, "b_id": 1})
    assert type(direct.value.orig) is type(through_sqlalchemy.value.orig)
    assert str(direct.value.orig) == str(through_sqlalchemy.value.orig)


def test_statements_run_through_sqlalchemy_while_something_watches_them(
    conn: Connection,
) -> None:
    seen: list[str] = []

    def watch(*args: Any) -> None:
        seen.append(args[2])

    event.listen(conn.engine, "before_cursor_execute", watch)
    try:
        rows = _history(conn, direct=True)
    finally:
        event.remove(conn.engine, "before_cursor_execute", watch)
    assert [row[0] for row in rows] == [4, 2, 1]
    assert len(seen) == 1
    assert seen[0].startswith("SELECT messages.id")
    seen.clear()
    _history(conn, direct=True)
    assert seen == []  # not watched: it went to the cursor


def test_a_statement_with_an_in_list_is_refused(conn: Connection) -> None:
    statement = Direct(update(messages).where(messages.c.id.in_([1, 2])))
    with pytest.raises(TypeError, match="cannot run directly"):
        statement.rowcount(conn, {"text": "x"})


def test_a_direct_insert_returns_its_new_id_and_stores_its_values(conn: Connection) -> None:
    statement = Direct(insert(messages).returning(messages.c.id))
    row = {
        "conversation_id": 1,
        "channel": "t",
        "direction": "out",
        "text": "reply",
        "markup": "plain",
        "status": "pending",
        "attempts": 0,
        "claim_token": 0,
        "meta": {"k": "v"},
        "created_at": WHEN,
        "updated_at": WHEN,
    }
    new_id = statement.scalar(conn, row)
    assert new_id == 5
    stored = conn.execute(messages.select().where(messages.c.id == new_id)).one()
    assert (stored.text, stored.meta, stored.created_at) == ("reply", {"k": "v"}, WHEN)


def test_an_insert_that_leaves_a_default_to_compute_is_sqlalchemys(conn: Connection) -> None:
    statement = Direct(insert(messages))
    # no created_at, attempts, markup...: SQLAlchemy fills in their Python defaults
    rows = [
        {"conversation_id": 1, "channel": "t", "direction": "out", "text": f"r{i}", "status": "x"}
        for i in range(2)
    ]
    statement.many(conn, rows)
    stored = conn.execute(messages.select().where(messages.c.text.in_(["r0", "r1"]))).all()
    assert len(stored) == 2
    assert all(r.created_at is not None and r.markup == "plain" for r in stored)


def test_many_rows_go_to_the_driver_in_one_call(conn: Connection) -> None:
    statement = Direct(UPDATE_MESSAGE)
    statement.many(conn, [{"text": f"t{i}", "b_id": i} for i in (1, 2, 3)])
    texts = conn.execute(messages.select().order_by(messages.c.id)).all()
    assert [r.text for r in texts] == ["t1", "t2", "t3", "turn 4"]
