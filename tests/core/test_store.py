"""The store on SQLite and PostgreSQL: dedupe, history, outbox, usage, state, migrations."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from botkit import ConversationRef, Message, Sender
from botkit.store import (
    CallRow,
    HistoryTurn,
    OutboundDraft,
    Store,
    ToolCallRecord,
    dollars,
    nanos,
)
from botkit.store.models import Base


def _msg(text: str, external_id: str, chat: str = "c1", user: str = "u1") -> Message:
    return Message(ConversationRef("test", chat), Sender(user, user.upper()), text, external_id)


async def test_accept_stores_once_per_channel_and_external_id(store: Store) -> None:
    first, conv = await store.inbound.accept(_msg("hi", "e1"))
    again, conv_again = await store.inbound.accept(_msg("hi again", "e1"))
    other_channel = Message(ConversationRef("other", "c1"), Sender("u1"), "hi", "e1")
    third, _ = await store.inbound.accept(other_channel)
    assert not first.duplicate
    assert again.duplicate
    assert again.message_id == first.message_id
    assert conv == conv_again
    assert not third.duplicate
    assert third.message_id != first.message_id
    [row] = [r for r in await store.inbound.unfinished() if r.id == first.message_id]
    assert row.text == "hi"  # the duplicate did not overwrite the original


async def test_concurrent_accepts_of_one_message_store_it_once(store: Store) -> None:
    results = await asyncio.gather(*(store.inbound.accept(_msg("x", "same")) for _ in range(10)))
    assert sum(not accepted.duplicate for accepted, _ in results) == 1
    assert len({accepted.message_id for accepted, _ in results}) == 1
    assert len(await store.inbound.unfinished()) == 1


async def test_history_returns_newest_turns_in_order_and_respects_reset(store: Store) -> None:
    ids = []
    for i in range(6):
        accepted, conv = await store.inbound.accept(_msg(f"m{i}", f"e{i}"))
        ids.append(accepted.message_id)
        await store.inbound.finish(
            [accepted.message_id], "done", [OutboundDraft(conv, "test", f"r{i}")]
        )
    history = await store.history.turns(conv, before_id=None, limit=4)
    assert [h.text for h in history] == ["m4", "r4", "m5", "r5"]
    await store.history.reset(conv, through_id=ids[4])
    history = await store.history.turns(conv, before_id=None, limit=50)
    assert [h.text for h in history] == ["r4", "m5", "r5"]


async def test_history_excludes_failed_replies_and_later_messages(store: Store) -> None:
    a, conv = await store.inbound.accept(_msg("first", "e1"))
    [out] = (
        await store.inbound.finish([a.message_id], "done", [OutboundDraft(conv, "test", "bad")])
    ).out_ids
    await store.outbound.update(out, status="failed")
    b, _ = await store.inbound.accept(_msg("second", "e2"))
    await store.inbound.accept(_msg("third", "e3"))
    await store.inbound.set_status([b.message_id], "processing")
    history = await store.history.turns(conv, before_id=b.message_id + 1, limit=50)
    assert [h.text for h in history] == ["first", "second"]


async def test_outbox_lists_undelivered_replies_oldest_first(store: Store) -> None:
    a, conv = await store.inbound.accept(_msg("q", "e1"))
    finished = await store.inbound.finish(
        [a.message_id],
        "done",
        [OutboundDraft(conv, "test", "one"), OutboundDraft(conv, "test", "two")],
    )
    out_ids = finished.out_ids
    assert [r.text for r in await store.outbound.pending(conv)] == ["one", "two"]
    await store.outbound.update(out_ids[0], status="delivered", external_id="x")
    assert [r.text for r in await store.outbound.pending(conv)] == ["two"]
    assert await store.outbound.conversations_with_undelivered() == [conv]


async def test_interrupted_streams_are_marked_failed(store: Store) -> None:
    _a, conv = await store.inbound.accept(_msg("q", "e1"))
    await store.outbound.add(OutboundDraft(conv, "test", "partial", status="streaming"))
    assert await store.outbound.interrupt_streams() == 1
    assert await store.outbound.pending(conv) == []


async def test_usage_groups_calls_and_keeps_unknown_prices_unknown(store: Store) -> None:
    a, conv = await store.inbound.accept(_msg("q", "e1"))
    for cost in (Decimal("0.04"), Decimal("0.01")):
        await store.usage.record_call(
            CallRow(
                "chat",
                "gpt-4-turbo",
                1000,
                1000,
                nanos(cost),
                12.0,
                True,
                None,
                1,
                a.message_id,
                conv,
                "test",
                "u1",
            )
        )
    await store.usage.record_call(
        CallRow(
            "chat",
            "mystery-model",
            10,
            5,
            None,
            3.0,
            True,
            None,
            1,
            a.message_id,
            conv,
            "test",
            "u1",
        )
    )
    rows = {r.model: r for r in await store.usage.report()}
    turbo = rows["gpt-4-turbo"]
    assert turbo.calls == 2
    assert turbo.prompt_tokens == 2000
    assert turbo.completion_tokens == 2000
    assert dollars(turbo.cost_nanos) == Decimal("0.05")
    assert turbo.channel == "test"
    assert turbo.user == "u1"
    assert turbo.unpriced_calls == 0
    assert rows["mystery-model"].unpriced_calls == 1
    assert rows["mystery-model"].cost_nanos == 0


async def test_spend_sums_tokens_and_cost_per_user_and_channel(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    a, conv = await store.inbound.accept(_msg("q", "e1"))
    for user, channel, cost in (
        ("u1", "test", "0.01"),
        ("u1", "other", "0.02"),
        ("u2", "test", "0.04"),
    ):
        await store.usage.record_call(
            CallRow(
                "chat",
                "gpt-4",
                10,
                5,
                nanos(Decimal(cost)),
                1.0,
                True,
                None,
                1,
                a.message_id,
                conv,
                channel,
                user,
            )
        )
    since = datetime.now(UTC) - timedelta(days=1)
    assert await store.usage.spend(since=since) == (45, nanos(Decimal("0.07")))
    assert await store.usage.spend(since=since, user_id="u1") == (30, nanos(Decimal("0.03")))
    assert await store.usage.spend(since=since, user_id="u1", channel="test") == (
        15,
        nanos(Decimal("0.01")),
    )
    assert await store.usage.spend(since=datetime.now(UTC) + timedelta(minutes=1)) == (0, 0)


async def test_state_round_trips_json_per_namespace(store: Store) -> None:
    a, b = store.state("plugin:a"), store.state("plugin:b")
    await a.set("k", {"n": 1, "list": [1, "x"]})
    await b.set("k", "other")
    assert await a.get("k") == {"n": 1, "list": [1, "x"]}
    assert await b.get("k") == "other"
    await a.set("k", 2)
    assert await a.get("k") == 2
    await a.delete("k")
    await a.delete("k")  # deleting twice is fine
    assert await a.get("k", "gone") == "gone"


async def test_summary_is_replaced_and_cleared_by_reset(store: Store) -> None:
    async def summary() -> tuple[str, int] | None:
        return (await store.history.recent_turns(conv, before_id=None, limit=0)).summary

    a, conv = await store.inbound.accept(_msg("q", "e1"))
    assert await summary() is None
    await store.history.save_summary(conv, "one", 1)
    await store.history.save_summary(conv, "two", a.message_id)
    assert await summary() == ("two", a.message_id)
    await store.history.reset(conv, through_id=a.message_id)
    assert await summary() is None


async def test_tool_calls_are_kept_with_the_message_they_answer_in_call_order(
    store: Store,
) -> None:
    a, _ = await store.inbound.accept(_msg("book a room", "e1"))
    b, _ = await store.inbound.accept(_msg("other", "e2"))
    first = await store.tool_calls.start(
        ToolCallRecord(a.message_id, 0, "call_1", "book", '{"room": 1}', said="On it.")
    )
    await store.tool_calls.start(
        ToolCallRecord(a.message_id, 0, "call_2", "nope", "{}", None, "rejected", "no tool")
    )
    await store.tool_calls.start(ToolCallRecord(b.message_id, 0, "call_9", "book", "{}"))
    running = await store.tool_calls.of([a.message_id])
    assert [(c.call_id, c.status, c.result) for c in running] == [
        ("call_1", "running", None),
        ("call_2", "rejected", "no tool"),
    ]
    await store.tool_calls.finish(first, "done", "Booked room 1")
    [done, rejected] = await store.tool_calls.of([a.message_id])
    assert done == ToolCallRecord(
        a.message_id, 0, "call_1", "book", '{"room": 1}', "On it.", "done", "Booked room 1", first
    )
    assert rejected.said is None


def test_money_is_exact_in_nano_dollars() -> None:
    assert nanos(Decimal("0.00015")) == 150_000
    assert dollars(nanos(Decimal("0.04"))) == Decimal("0.04")
    assert nanos(None) is None
    assert dollars(None) is None


async def test_migrations_build_exactly_the_models_schema(store: Store) -> None:
    diff = await store.db.read(
        lambda conn: compare_metadata(MigrationContext.configure(conn), Base.metadata)
    )
    assert diff == []


async def test_upgrade_twice_is_a_no_op(store: Store) -> None:
    await store.db.upgrade()
    accepted, _ = await store.inbound.accept(_msg("still works", "e1"))
    assert not accepted.duplicate


async def test_claims_keep_work_with_one_live_process(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    from botkit.store import Claim

    soon = datetime.now(UTC) + timedelta(seconds=30)
    past = datetime.now(UTC) - timedelta(seconds=1)
    a, _ = await store.inbound.accept(_msg("q", "e1"), claim=Claim("A", soon))
    assert await store.inbound.unfinished(now=datetime.now(UTC)) == []
    taken = await store.claims.claim(
        [a.message_id],
        Claim("B", soon),
        status="processing",
        from_statuses=("pending", "processing"),
    )
    assert taken == {}
    taken = await store.claims.claim(
        [a.message_id],
        Claim("A", soon),
        status="processing",
        from_statuses=("pending", "processing"),
    )
    assert taken == {a.message_id: 1}  # still A's live claim: the same fencing token
    assert await store.claims.renew(Claim("A", past)) == 1  # A's claim now lapsed
    assert [r.id for r in await store.inbound.unfinished(now=datetime.now(UTC))] == [a.message_id]
    taken = await store.claims.claim(
        [a.message_id],
        Claim("B", soon),
        status="processing",
        from_statuses=("pending", "processing"),
    )
    assert taken == {a.message_id: 2}  # taken over: the token grows
    assert await store.claims.release_all("B") == 1
    assert len(await store.inbound.unfinished(now=datetime.now(UTC))) == 1


async def test_replies_are_claimed_for_sending_at_once_only_when_nothing_waits(
    store: Store,
) -> None:
    from datetime import UTC, datetime, timedelta

    from botkit.store import Claim

    claim = Claim("me", datetime.now(UTC) + timedelta(seconds=30))
    a, conv = await store.inbound.accept(_msg("q1", "e1"))
    first = await store.inbound.finish(
        [a.message_id], "done", [OutboundDraft(conv, "test", "r1")], claim=claim
    )
    assert first.claimed
    [row] = await store.history.messages(first.out_ids)
    assert (row.status, row.attempts) == ("sending", 1)
    b, _ = await store.inbound.accept(_msg("q2", "e2"))
    second = await store.inbound.finish(
        [b.message_id], "done", [OutboundDraft(conv, "test", "r2")], claim=claim
    )
    assert not second.claimed  # r1 is still on its way: r2 must wait its turn
    [row] = await store.history.messages(second.out_ids)
    assert (row.status, row.attempts) == ("pending", 0)


async def test_recent_turns_reads_summary_and_uncovered_turns_together(
    store: Store,
) -> None:
    ids = []
    for i in range(4):
        accepted, conv = await store.inbound.accept(_msg(f"m{i}", f"e{i}"))
        ids.append(accepted.message_id)
        await store.inbound.set_status([accepted.message_id], "done")
    read = await store.history.recent_turns(conv, before_id=None, limit=10)
    full = await store.history.turns(conv, before_id=None, limit=10)
    # the same turns as the full read, in the lean form an answer's context needs
    assert (read.summary, read.turns) == (
        None,
        [
            HistoryTurn(t.id, t.direction, t.status, t.sender_id, t.sender_name, t.text)
            for t in full
        ],
    )
    await store.history.save_summary(conv, "the first two", ids[1])
    read = await store.history.recent_turns(conv, before_id=None, limit=10)
    assert read.summary == ("the first two", ids[1])
    assert [r.text for r in read.turns] == ["m2", "m3"]


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    from pathlib import Path

    from sqlalchemy import text

    from botkit.store import Database

    database = Database(f"sqlite:///{Path(str(tmp_path)) / 'wal.db'}", busy_timeout=7)
    try:
        mode, timeout = await database.read(
            lambda conn: (
                conn.execute(text("PRAGMA journal_mode")).scalar(),
                conn.execute(text("PRAGMA busy_timeout")).scalar(),
            )
        )
    finally:
        await database.close()
    assert mode == "wal"
    assert timeout == 7000


async def test_chat_messages_and_annotation_counts_span_every_thread(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    mail = [
        Message(ConversationRef("mail", "box", thread), Sender("u"), text, eid)
        for thread, text, eid in (("t1", "a", "e1"), ("t2", "b", "e2"), ("t3", "c", "e3"))
    ]
    ids = [(await store.inbound.accept(m))[0].message_id for m in mail]
    await store.inbound.accept(Message(ConversationRef("mail", "other"), Sender("u"), "x", "e4"))
    await store.history.annotate(ids[0], {"sentiment": "negative"})
    await store.history.annotate(ids[1], {"sentiment": "negative"})
    await store.history.annotate(ids[2], {"sentiment": "positive"})
    since = datetime.now(UTC) - timedelta(hours=1)
    rows = await store.history.chat_messages_since("mail", "box", since=since, limit=10)
    assert [r.text for r in rows] == ["a", "b", "c"]
    assert [
        r.text
        for r in await store.history.chat_messages_since("mail", "box", since=since, limit=2)
    ] == [
        "b",
        "c",
    ]
    counts = {(c, v): n for _, c, v, n in await store.history.annotation_counts("sentiment")}
    assert counts == {("mail", "negative"): 2, ("mail", "positive"): 1}


def _put(key: str, *, fail: bool = False, gate: threading.Event | None = None) -> Any:
    """A write operation storing ``key`` in the state table (after ``gate`` opens)."""
    from sqlalchemy import insert

    from botkit.store.models import state as state_table
    from botkit.store.models import utcnow

    def op(conn: Connection) -> str:
        if gate is not None:
            gate.wait(10)
        conn.execute(
            insert(state_table).values(namespace="t", key=key, value=key, updated_at=utcnow())
        )
        if fail:
            raise ValueError(f"bad write {key}")
        return key

    return op


async def test_concurrent_writes_commit_together_and_one_failure_fails_alone(
    store: Store,
) -> None:
    results = await asyncio.gather(
        *(store.db.write(_put(f"k{i}", fail=i == 7)) for i in range(20)),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, Exception)].__len__() == 1
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i != 7] == [f"k{i}" for i in range(20) if i != 7]
    state = store.state("t")
    assert [await state.get(f"k{i}") for i in (0, 7, 19)] == ["k0", None, "k19"]


def _sqlite_only(store: Store) -> None:
    if not store.db.sqlite:  # there an operation runs on the event loop: a gate would block it
        pytest.skip("the SQLite writer thread's queue")


async def test_a_write_cancelled_before_it_ran_is_withdrawn_and_strands_nobody(
    store: Store,
) -> None:
    _sqlite_only(store)
    gate = threading.Event()
    first = asyncio.create_task(store.db.write(_put("first", gate=gate)))  # holds the line
    await asyncio.sleep(0.05)
    withdrawn = asyncio.create_task(store.db.write(_put("withdrawn")))
    followers = [asyncio.create_task(store.db.write(_put(f"k{i}"))) for i in range(5)]
    await asyncio.sleep(0.01)
    withdrawn.cancel()
    gate.set()
    assert await first == "first"
    assert await asyncio.wait_for(asyncio.gather(*followers), 10) == [f"k{i}" for i in range(5)]
    assert withdrawn.cancelled()
    state = store.state("t")
    assert await state.get("k4") == "k4"
    assert await state.get("withdrawn") is None


async def test_a_write_cancelled_while_it_runs_still_commits(store: Store) -> None:
    _sqlite_only(store)
    gate = threading.Event()
    running = asyncio.create_task(store.db.write(_put("running", gate=gate)))
    await asyncio.sleep(0.05)  # the transaction has started (on PostgreSQL: it is open)
    running.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.sleep(0.1)
    # a write that started completes, like a commit under way
    assert await store.state("t").get("running") == "running"


async def test_reads_asked_at_once_each_get_their_own_result_or_error(store: Store) -> None:
    from sqlalchemy import Integer, literal, select, text
    from sqlalchemy.exc import SQLAlchemyError

    def number(i: int) -> Any:
        return lambda conn: conn.execute(select(literal(i, Integer()))).scalar()

    def broken(conn: Connection) -> Any:
        return conn.execute(text("SELECT * FROM no_such_table")).all()

    results = await asyncio.gather(
        *(store.db.read(number(i)) for i in range(50)),
        store.db.read(broken),
        *(store.db.read(number(i)) for i in range(50, 100)),
        return_exceptions=True,
    )
    assert isinstance(results[50], SQLAlchemyError)
    assert results[:50] + results[51:] == list(range(100))


async def test_a_burst_of_accepts_stores_each_message_once_with_its_conversation(
    store: Store,
) -> None:
    earlier, _ = await store.inbound.accept(_msg("before the burst", "pre", chat="c0"))
    burst = [_msg(f"m{i}", f"e{i}", chat=f"c{i % 10}") for i in range(40)]
    burst.insert(7, _msg("m5 delivered twice", "e5", chat="c5"))
    burst.append(_msg("again", "pre", chat="c0"))
    with _statements(store) as statements:
        results = await asyncio.gather(*(store.inbound.accept(m) for m in burst))
    if store.db.sqlite:  # the burst runs together, in a few statements
        inserts = [s for s in statements if s.startswith("INSERT INTO messages")]
        assert 1 <= len(inserts) <= 3, statements

    duplicates = [m.external_id for m, (a, _) in zip(burst, results, strict=True) if a.duplicate]
    assert sorted(duplicates) == ["e5", "pre"]
    assert results[-1][0].message_id == earlier.message_id
    assert results[5][0].message_id == results[7][0].message_id  # both copies of e5
    firsts = [a.message_id for m, (a, _) in zip(burst, results, strict=True) if not a.duplicate]
    assert len(set(firsts)) == 40
    for message, (_, conversation_id) in zip(burst, results, strict=True):
        assert conversation_id == await store.history.conversation_id(message.conversation)
    texts = {m.text for m in await store.history.messages(firsts)}
    # the first copy of e5 is kept: in queue order on SQLite, whichever won on PostgreSQL
    kept = {"m5"} if store.db.sqlite else texts & {"m5", "m5 delivered twice"}
    assert len(kept) == 1
    assert texts == {f"m{i}" for i in range(40) if i != 5} | kept


async def test_a_bad_message_in_a_burst_fails_alone(store: Store) -> None:
    from botkit.exceptions import StoreError

    burst = [_msg(f"m{i}", f"e{i}", chat=f"c{i % 3}") for i in range(10)]
    burst[4] = Message(ConversationRef("test", "c1"), Sender("u1"), None, "bad")  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(store.inbound.accept(m) for m in burst), return_exceptions=True
    )
    assert isinstance(results[4], StoreError)
    good = [r for i, r in enumerate(results) if i != 4]
    assert all(isinstance(r, tuple) and not r[0].duplicate for r in good)
    stored = await store.history.messages([r[0].message_id for r in good if isinstance(r, tuple)])
    assert sorted(m.text for m in stored) == [f"m{i}" for i in range(10) if i != 4]


def _statements(store: Store) -> Any:
    """A context manager collecting the SQL run on SQLite (nothing on PostgreSQL)."""
    import contextlib

    from sqlalchemy import event

    @contextlib.contextmanager
    def collect() -> Any:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        engine = getattr(store.db, "_sync", None)
        if engine is not None:
            event.listen(engine, "before_cursor_execute", count)
        try:
            yield seen
        finally:
            if engine is not None:
                event.remove(engine, "before_cursor_execute", count)

    return collect()


@pytest.mark.parametrize("together_from", [2, None], ids=["as-one-burst", "each-alone"])
async def test_a_burst_of_finishes_keeps_each_conversations_outbox_order(
    store: Store, monkeypatch: pytest.MonkeyPatch, together_from: int | None
) -> None:
    from datetime import UTC, datetime, timedelta

    from botkit.store import engine

    # the seven finishes below run as one burst's shared statements, or (botkit's default
    # for so few: None keeps it) each on its own statements in the same transaction: the
    # same outcome
    if together_from is not None:
        monkeypatch.setattr(engine, "_TOGETHER_FROM", together_from)

    from botkit.store import Claim

    claim = Claim("me", datetime.now(UTC) + timedelta(seconds=30))
    accepted = [await store.inbound.accept(_msg(f"q{i}", f"e{i}", chat=f"c{i}")) for i in range(6)]
    # c0 has a reply still waiting to go out: its new reply must queue behind it
    await store.outbound.add(OutboundDraft(accepted[0][1], "test", "older"))
    later, _ = await store.inbound.accept(_msg("q0b", "e0b", chat="c5"))

    def call(i: int) -> CallRow:
        return CallRow("chat", "gpt-4o-mini", 10, i, 1000, 1.0, True, None, 1, user_id=f"u{i}")

    finishes = [
        store.inbound.finish(
            [a.message_id],
            "done",
            [OutboundDraft(conv, "test", f"r{i}")],
            claim=claim,
            calls=[call(i)],
        )
        for i, (a, conv) in enumerate(accepted)
    ]
    # c5 twice: its second reply must wait for the first (in one burst on SQLite; one
    # after the other on PostgreSQL, whose concurrent transactions have no order)
    second = store.inbound.finish(
        [later.message_id], "done", [OutboundDraft(accepted[5][1], "test", "r5b")], claim=claim
    )
    with _statements(store) as seen:
        if store.db.sqlite:
            finished = await asyncio.gather(*finishes, second)
        else:
            finished = [*await asyncio.gather(*finishes), await second]
    if store.db.sqlite:
        for start in ("INSERT INTO model_calls", "INSERT INTO messages", "UPDATE messages"):
            count = len([s for s in seen if s.startswith(start)])
            if together_from == 2:  # two parts (c5 repeats), a few statements, not per row
                assert count <= 2, (start, seen)
            else:  # each finish its own statements: six with a model call, seven replies
                assert count == (6 if start == "INSERT INTO model_calls" else 7), (start, seen)
    assert [f.claimed for f in finished] == [False, True, True, True, True, True, False]
    rows = await store.history.messages([i for f in finished for i in f.out_ids])
    # each finish got the id of its own reply back from the multi-row INSERT
    texts = {r.id: r.text for r in rows}
    assert [texts[f.out_ids[0]] for f in finished] == [*(f"r{i}" for i in range(6)), "r5b"]
    assert {r.text: r.status for r in rows} == {
        "r0": "pending",
        **{f"r{i}": "sending" for i in range(1, 6)},
        "r5b": "pending",
    }
    inbound = await store.history.messages(
        [a.message_id for a, _ in accepted] + [later.message_id]
    )
    assert {m.status for m in inbound} == {"done"}
    assert sum(r.calls for r in await store.usage.report()) == 6


async def test_a_burst_of_finishes_with_different_outcomes_marks_each_its_own(
    store: Store,
) -> None:
    accepted = [await store.inbound.accept(_msg(f"q{i}", f"e{i}", chat=f"c{i}")) for i in range(6)]
    outcomes = [("done", None), ("failed", "boom"), ("skipped", None)] * 2
    finished = await asyncio.gather(
        *(
            store.inbound.finish(
                [a.message_id],
                status,
                [OutboundDraft(conv, "test", f"r{i}")] if status != "skipped" else [],
                error=error,
            )
            for i, ((a, conv), (status, error)) in enumerate(zip(accepted, outcomes, strict=True))
        )
    )
    rows = await store.history.messages([a.message_id for a, _ in accepted])
    assert [(r.status, r.error) for r in rows] == outcomes
    assert [len(f.out_ids) for f in finished] == [1, 1, 0, 1, 1, 0]


async def test_a_message_finished_twice_in_one_burst_keeps_the_last_outcome(
    store: Store,
) -> None:
    _sqlite_only(store)
    (x, _), (y, _) = (
        await store.inbound.accept(_msg("x", "ex", chat="x")),
        await store.inbound.accept(_msg("y", "ey", chat="y")),
    )
    gate = threading.Event()
    holding = asyncio.create_task(store.db.write(_put("hold", gate=gate)))
    await asyncio.sleep(0.05)  # the writer is busy: the finishes below queue together
    finishes = [
        asyncio.create_task(store.inbound.finish([i], status, [], error=error))
        for i, status, error in [
            (y.message_id, "done", None),
            (x.message_id, "failed", "boom"),
            (x.message_id, "done", None),
        ]
    ]
    await asyncio.sleep(0.05)
    gate.set()
    await holding
    await asyncio.gather(*finishes)
    rows = await store.history.messages([x.message_id, y.message_id])
    assert [(r.status, r.error) for r in rows] == [("done", None), ("done", None)]


async def test_a_burst_of_finishes_keeps_its_reply_ids_when_sqlite_gives_ids_out_of_order(
    store: Store,
) -> None:
    _sqlite_only(store)
    from sqlalchemy import text

    accepted = [
        await store.inbound.accept(_msg(f"q{i}", f"e{i}", chat=f"c{i}")) for i in range(20)
    ]
    # once the largest possible id is taken, SQLite hands out free ids at random
    await store.db.write(
        lambda conn: conn.execute(
            text(
                "INSERT INTO messages (id, conversation_id, channel, direction, text, markup,"
                " status, attempts, created_at, updated_at) VALUES (9223372036854775807,"
                " :conv, 'test', 'out', 'last id', 'plain', 'delivered', 0, :now, :now)"
            ),
            {"conv": accepted[0][1], "now": "2026-01-01 00:00:00"},
        )
    )
    finished = await asyncio.gather(
        *(
            store.inbound.finish([a.message_id], "done", [OutboundDraft(conv, "test", f"r{i}")])
            for i, (a, conv) in enumerate(accepted)
        )
    )
    rows = await store.history.messages([f.out_ids[0] for f in finished])
    texts = {r.id: r.text for r in rows}
    assert [texts[f.out_ids[0]] for f in finished] == [f"r{i}" for i in range(20)]


async def test_a_burst_of_context_reads_and_delivery_marks_match_them_one_by_one(
    store: Store,
) -> None:
    convs = []
    for chat in ("a", "b", "c"):
        for i in range(3):
            accepted, conv = await store.inbound.accept(
                _msg(f"{chat}{i}", f"{chat}-{i}", chat=chat)
            )
            await store.inbound.set_status([accepted.message_id], "done")
        convs.append((conv, accepted.message_id))
    await store.history.save_summary(convs[1][0], "b so far", convs[1][1] - 1)
    await store.history.reset(convs[2][0], through_id=convs[2][1])
    alone = [await store.history.recent_turns(c, before_id=None, limit=10) for c, _ in convs]
    together = await asyncio.gather(
        *(store.history.recent_turns(c, before_id=None, limit=10) for c, _ in convs)
    )
    assert together == alone
    assert alone[1].summary == ("b so far", convs[1][1] - 1)
    assert (alone[2].summary, alone[2].turns) == (None, [])

    outs = [await store.outbound.add(OutboundDraft(c, "test", f"to {c}")) for c, _ in convs]
    marks = [
        store.outbound.update(outs[0], status="sending"),
        store.outbound.update(outs[0], status="delivered", external_id="x0"),  # same row: in turn
        *(store.outbound.update(o, status="delivered", external_id=f"x{o}") for o in outs[1:]),
    ]
    if store.db.sqlite:  # queued together, run in queue order
        await asyncio.gather(*marks)
    else:  # concurrent transactions have no order: one after another
        for mark in marks:
            await mark
    rows = await store.history.messages(outs)
    assert [(r.status, r.external_id) for r in rows] == [
        ("delivered", "x0"),
        *(("delivered", f"x{o}") for o in outs[1:]),
    ]


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite:///{tmp}/async-name.db"],
)
async def test_sqlite_urls_users_write_all_work(url: str, tmp_path: object) -> None:
    from botkit.store import Database

    database = Database(url.format(tmp=tmp_path))
    assert database.url.startswith("sqlite+pysqlite")
    try:
        await database.upgrade()
        store = Store(database)
        accepted, conv = await store.inbound.accept(_msg("kept", "e1"))
        concurrent = await asyncio.gather(
            *(store.inbound.accept(_msg(f"m{i}", f"x{i}")) for i in range(20)),
            store.history.turns(conv, before_id=None, limit=50),
        )
        assert len({a.message_id for a, _ in concurrent[:20]}) == 20  # type: ignore[union-attr]
        [row] = await store.history.messages([accepted.message_id])
        assert row.text == "kept"
    finally:
        await database.close()


def test_a_database_url_that_is_not_one_is_a_config_error() -> None:
    from botkit.exceptions import ConfigError
    from botkit.store import Database

    with pytest.raises(ConfigError, match=r"database\.url"):
        Database("not a url at all")
    with pytest.raises(ConfigError, match=r"database\.url"):
        Database("nosuchdb://host/db")


async def test_an_operation_asked_for_right_after_the_last_one_is_never_stranded(
    store: Store,
) -> None:
    # each call comes the moment the previous result is in, while the drainer that ran it
    # is only just stopping: it must still be picked up (awaited directly: wait_for's own
    # task would add the loop turn that hides the race; the suite's timeout catches a hang)
    for i in range(50):
        assert await store.db.write(_put(f"s{i}")) == f"s{i}"
    for i in range(50):
        assert await store.state("t").get(f"s{i}") == f"s{i}"


async def test_a_closed_database_refuses_work_with_a_store_error(database_url: str) -> None:
    from botkit.exceptions import StoreError
    from botkit.store import Database

    database = Database(database_url)
    await database.upgrade()
    store = Store(database)
    await store.state("t").set("k", 1)
    await database.close()
    await database.close()  # twice is harmless
    with pytest.raises(StoreError, match="closed"):
        await store.state("t").set("k", 2)
    with pytest.raises(StoreError, match="closed"):
        await store.state("t").get("k")


async def test_reads_that_cannot_connect_all_fail_and_strand_nobody(tmp_path: object) -> None:
    from pathlib import Path

    from botkit.exceptions import StoreError
    from botkit.store import Database

    folder = Path(str(tmp_path)) / "a-folder"
    folder.mkdir()
    database = Database(f"sqlite:///{folder}")  # a folder is no database file
    store = Store(database)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(store.history.messages([1]) for _ in range(300)), return_exceptions=True
            ),
            10,
        )
        assert all(isinstance(r, StoreError) for r in results)
        with pytest.raises(StoreError):  # and the next one is answered too
            await asyncio.wait_for(store.history.messages([1]), 5)
    finally:
        await database.close()


async def test_a_burst_of_writes_while_another_process_holds_the_lock_fails_at_once(
    tmp_path: object,
) -> None:
    import sqlite3
    import time
    from pathlib import Path

    from botkit.exceptions import StoreError
    from botkit.store import Database

    path = Path(str(tmp_path)) / "locked.db"
    database = Database(f"sqlite:///{path}", busy_timeout=0.3)
    await database.upgrade()
    store = Store(database)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process, mid-transaction
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(store.state("t").set(f"k{i}", i) for i in range(20)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    finally:
        other.rollback()
        other.close()
    assert all(isinstance(r, StoreError) and "locked" in str(r) for r in results)
    # one wait for the lock for the whole burst, not one for each of its 20 writes
    assert elapsed < 20 * 0.3
    await store.state("t").set("after", 1)  # the lock is free again: writes go through
    assert await store.state("t").get("after") == 1
    await database.close()


async def test_update_outbound_refuses_a_column_it_does_not_have(store: Store) -> None:
    from botkit.exceptions import StoreError

    _, conv = await store.inbound.accept(_msg("q", "e1"))
    out = await store.outbound.add(OutboundDraft(conv, "test", "r"))
    with pytest.raises(StoreError, match="stauts"):
        await store.outbound.update(out, stauts="delivered")
    with pytest.raises(StoreError, match="id"):
        await store.outbound.update(out, id=999)
    [row] = await store.history.messages([out])
    assert row.status == "pending"


async def test_state_keeps_what_it_was_given_not_what_the_caller_changes_later(
    store: Store,
) -> None:
    from botkit.exceptions import StoreError

    value = {"seen": [1, 2]}
    writing = asyncio.create_task(store.state("t").set("k", value))
    await asyncio.sleep(0)  # set_state has run up to queueing its write
    value["seen"].append(3)  # the caller changes its own object while the write waits
    await writing
    assert await store.state("t").get("k") == {"seen": [1, 2]}
    with pytest.raises(StoreError, match="not JSON"):
        await store.state("t").set("bad", {"when": object()})


async def test_a_finish_with_replies_in_two_conversations_keeps_both_in_order(
    store: Store,
) -> None:
    from datetime import UTC, datetime, timedelta

    from botkit.store import Claim

    claim = Claim("me", datetime.now(UTC) + timedelta(seconds=30))
    a, x = await store.inbound.accept(_msg("qa", "ea", chat="x"))
    b, y = await store.inbound.accept(_msg("qb", "eb", chat="y"))
    both = store.inbound.finish(
        [a.message_id],
        "done",
        [OutboundDraft(x, "test", "to x"), OutboundDraft(y, "test", "to y")],
        claim=claim,
    )
    after = store.inbound.finish(
        [b.message_id], "done", [OutboundDraft(y, "test", "y again")], claim=claim
    )
    if store.db.sqlite:  # one burst
        first, second = await asyncio.gather(both, after)
    else:
        first, second = await both, await after
    assert (first.claimed, second.claimed) == (True, False)  # y's first reply goes first
    rows = await store.history.messages([*first.out_ids, *second.out_ids])
    assert [(r.text, r.status) for r in rows] == [
        ("to x", "sending"),
        ("to y", "sending"),
        ("y again", "pending"),
    ]


async def test_postgresql_keeps_a_connection_per_message_in_flight(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a pool of server connections: PostgreSQL only")
    from sqlalchemy import text

    from botkit.store import Database

    database = Database(database_url, connections=12)

    def backend(conn: Connection) -> int:
        pid = conn.execute(text("SELECT pg_backend_pid() FROM pg_sleep(0.05)")).scalar_one()
        return int(pid)

    try:
        seen: set[int] = set()
        for _ in range(4):  # bursts of as many reads as the pool holds
            seen.update(await asyncio.gather(*(database.read(backend) for _ in range(12))))
    finally:
        await database.close()
    # the same 12 backends serve every burst (5 kept and 7 reopened per burst before)
    assert len(seen) == 12


async def test_budgets_see_calls_not_yet_stored_with_their_message(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    from botkit.store import CallRow

    call = CallRow("chat", "gpt-4", 100, 50, 1000, 1.0, True, None, 1, None, None, "test", "u1")
    since = datetime.now(UTC) - timedelta(days=1)
    store.usage.note_unsaved(call)
    assert await store.usage.spend(since=since, user_id="u1") == (150, 1000)
    assert await store.usage.spend(since=since, user_id="u2") == (0, 0)
    await store.usage.record_calls([call])
    assert await store.usage.spend(since=since, user_id="u1") == (150, 1000)  # counted once
