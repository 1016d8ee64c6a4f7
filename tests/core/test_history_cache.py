"""The in-memory recent turns: an answer reads only what is new, and sees what the
database says (resets, summaries and released messages from any process)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from botkit import ConversationRef, Message, Sender
from botkit.history_cache import HistoryCache, fit_window
from botkit.llm import ChatMessage, TokenCounter
from botkit.store import ContextRead, OutboundDraft, Store


class _Reads:
    """Counts the turns each history read of a store returns."""

    def __init__(self, store: Store) -> None:
        self.turns: list[int] = []
        self.after: list[int] = []
        real = store.history.recent_turns

        async def recent_turns(conversation_id: int, **kwargs: Any) -> ContextRead:
            read = await real(conversation_id, **kwargs)
            self.turns.append(len(read.turns))
            self.after.append(kwargs.get("after_id", 0))
            return read

        store.history.recent_turns = recent_turns  # type: ignore[method-assign]


EVERYTHING = 10**9  # a ``before_id`` above every stored message


def _msg(text: str, n: int, user: str = "u1") -> Message:
    return Message(ConversationRef("test", "c1"), Sender(user, user.upper()), text, f"e{n}")


async def _exchange(store: Store, n: int, *, user: str = "u1", delivered: bool = True) -> int:
    """Stores message ``m{n}`` answered by ``r{n}``; returns the message's id."""
    accepted, conv = await store.inbound.accept(_msg(f"m{n}", n, user))
    finished = await store.inbound.finish(
        [accepted.message_id], "done", [OutboundDraft(conv, "test", f"r{n}")]
    )
    if delivered:
        [reply] = finished.out_ids
        await store.outbound.update(reply, status="delivered")
    return accepted.message_id


async def _window(cache: HistoryCache, store: Store, before_id: int, limit: int = 50) -> list[str]:
    """The window's texts; checks on the way that the JSON the cache keeps of its turns
    (what a request's body is made of) is what they encode to now."""
    counter = TokenCounter(None)
    window = await cache.window(store, counter, 1, before_id=before_id, limit=limit)
    assert window.encoded == b",".join(orjson.dumps(m) for m in window.messages)
    return [str(m.get("content")) for m in window.messages]


async def test_a_long_conversation_reads_only_the_turns_since_the_last_answer(
    store: Store,
) -> None:
    for n in range(30):
        await _exchange(store, n)
    reads = _Reads(store)
    cache = HistoryCache()
    new, conv = await store.inbound.accept(_msg("m30", 30))
    first = await _window(cache, store, new.message_id + 1)
    assert first[-3:] == ["m29", "r29", "m30"]
    assert len(first) == 50
    finished = await store.inbound.finish(
        [new.message_id], "done", [OutboundDraft(conv, "test", "r30")]
    )
    await store.outbound.update(finished.out_ids[0], status="delivered")
    newer, _ = await store.inbound.accept(_msg("m31", 31))
    assert await _window(cache, store, newer.message_id + 1) == [*first[2:], "r30", "m31"]
    # the second read starts at the first turn that was still open (m30): three rows
    assert reads.turns == [50, 3]
    assert reads.after[1] == new.message_id - 1


async def test_a_reply_still_on_its_way_is_read_again_until_it_settles(store: Store) -> None:
    cache = HistoryCache()
    first = await _exchange(store, 0, delivered=False)
    assert await _window(cache, store, first + 1) == ["m0"]
    accepted, conv = await store.inbound.accept(_msg("m1", 1))
    # r0 was still pending when read: it is read again and now shows (pending counts)
    assert await _window(cache, store, accepted.message_id + 1) == ["m0", "r0", "m1"]
    # r0 fails for good: it leaves history although it was read before
    [r0] = [m for m in await store.history.turns(conv, before_id=None, limit=10) if m.text == "r0"]
    await store.outbound.update(r0.id, status="failed")
    assert await _window(cache, store, accepted.message_id + 1) == ["m0", "m1"]


async def test_a_reset_or_a_summary_written_elsewhere_is_seen(store: Store) -> None:
    ids = [await _exchange(store, n) for n in range(4)]
    cache = HistoryCache()
    assert len(await _window(cache, store, ids[-1] + 1)) == 7
    # another process folds the first two exchanges into a summary
    await store.history.save_summary(1, "m0 to r1", ids[2] - 1)
    newest = await _exchange(store, 4)
    window = await cache.window(store, TokenCounter(None), 1, before_id=newest + 1, limit=50)
    assert window.summary == ("m0 to r1", ids[2] - 1)
    assert [m.get("content") for m in window.messages] == ["m2", "r2", "m3", "r3", "m4"]
    # and another process resets the conversation
    await store.history.reset(1, through_id=newest)
    again = await _exchange(store, 5)
    assert await _window(cache, store, again + 1) == ["r4", "m5"]


async def test_a_held_message_released_joins_history_behind_newer_turns(store: Store) -> None:
    cache = HistoryCache()
    held, _conv = await store.inbound.accept(_msg("held one", 0))
    await store.inbound.finish([held.message_id], "skipped", [])
    ids = [await _exchange(store, n) for n in range(1, 3)]
    assert "held one" not in await _window(cache, store, ids[-1] + 1)
    await store.inbound.set_status([held.message_id], "pending")  # a person released it
    newest = await _exchange(store, 3)
    assert (await _window(cache, store, newest + 1))[0] == "held one"


async def test_the_window_keeps_the_newest_turns_within_the_limit(store: Store) -> None:
    cache = HistoryCache()
    for n in range(3):
        await _exchange(store, n)
    assert await _window(cache, store, EVERYTHING, limit=3) == ["r1", "m2", "r2"]
    for n in range(3, 6):
        await _exchange(store, n)
        assert await _window(cache, store, EVERYTHING, limit=3) == [f"r{n - 1}", f"m{n}", f"r{n}"]


async def test_speakers_are_named_once_a_second_person_talks(store: Store) -> None:
    cache = HistoryCache()
    await _exchange(store, 0)
    assert await _window(cache, store, EVERYTHING) == ["m0", "r0"]
    await _exchange(store, 1, user="u2")
    assert await _window(cache, store, EVERYTHING) == ["U1: m0", "r0", "U2: m1", "r1"]


class _CountingCounter(TokenCounter):
    def __init__(self) -> None:
        super().__init__(None)
        self.counted: list[str] = []

    def count_message(self, message: ChatMessage) -> int:
        self.counted.append(str(message.get("content")))
        return super().count_message(message)


async def test_each_turn_is_counted_once_when_the_window_is_tight(store: Store) -> None:
    counter = _CountingCounter()
    cache = HistoryCache()
    for n in range(10):
        await _exchange(store, n)
    system: list[ChatMessage] = [{"role": "system", "content": "s"}]
    window = await cache.window(store, counter, 1, before_id=EVERYTHING, limit=50)
    assert fit_window(system, window.turns, budget=10_000, counter=counter).dropped == []
    assert counter.counted == []  # far inside the window: nothing counted
    fit = fit_window(system, window.turns, budget=60, counter=counter)
    assert fit.dropped
    assert fit.tokens <= 60
    turns = [str(m.get("content")) for m in window.messages]
    assert sorted(counter.counted) == sorted([*turns, "s"])
    counter.counted.clear()
    await _exchange(store, 10)
    window = await cache.window(store, counter, 1, before_id=EVERYTHING, limit=50)
    fit_window(system, window.turns, budget=60, counter=counter)
    # only the new turns (and the system prompt) are counted this time
    assert sorted(counter.counted) == sorted(["s", "m10", "r10"])


async def test_the_cache_forgets_the_least_recent_conversations_and_idle_ones(
    store: Store,
) -> None:
    now = [0.0]
    cache = HistoryCache(max_conversations=2, max_idle=60, clock=lambda: now[0])
    counter = TokenCounter(None)
    for chat in ("a", "b", "c"):
        accepted, conv = await store.inbound.accept(
            Message(ConversationRef("test", chat), Sender("u"), "hi", chat)
        )
        await cache.window(store, counter, conv, before_id=accepted.message_id + 1, limit=5)
    assert len(cache) == 2
    assert cache.misses == 3
    now[0] = 61.0
    reads = _Reads(store)
    await cache.window(store, counter, 3, before_id=10_000, limit=5)
    assert reads.after == [0]  # idle past max_idle: read afresh


async def test_the_cache_is_bounded_by_the_text_it_holds(store: Store) -> None:
    # a 600-character turn holds 600 bytes of text and 630 of JSON: one fits, two do not
    cache = HistoryCache(max_bytes=2_000)
    counter = TokenCounter(None)
    for chat in ("a", "b"):
        accepted, conv = await store.inbound.accept(
            Message(ConversationRef("test", chat), Sender("u"), "x" * 600, chat)
        )
        await store.inbound.finish([accepted.message_id], "done", [])
        await cache.window(store, counter, conv, before_id=accepted.message_id + 1, limit=5)
    assert len(cache) == 1


@pytest.mark.parametrize("settled", [True, False])
async def test_the_cached_window_equals_a_fresh_read(store: Store, settled: bool) -> None:
    cache = HistoryCache()
    for n in range(12):
        newest = await _exchange(store, n, user=f"u{n % 3}", delivered=settled or n % 2 == 0)
        cached = await _window(cache, store, newest + 1, limit=7)
        fresh = await _window(HistoryCache(), store, newest + 1, limit=7)
        assert cached == fresh
        window = await cache.window(store, TokenCounter(None), 1, before_id=newest + 1, limit=7)
        assert window.bound == sum(turn.bound for turn in window.turns)


# -- reading ahead: the answer's new turns read as its message is accepted (SQLite) ----


async def _accept_reading(cache: HistoryCache, store: Store, n: int) -> int:
    """Accept ``m{n}`` as the inbox does with a read-ahead; returns its id."""
    message = _msg(f"m{n}", n)
    plan = cache.plan(
        store.inbound.known_conversation(message.conversation),
        limit=50,
        changes=store.inbound.context_changes,
    )
    accepted, conv, read = await store.inbound.accept_reading(message, plan=plan)
    if read is not None and plan is not None:
        cache.prefetched(conv, accepted.message_id + 1, plan, read)
    return accepted.message_id


async def _answer(store: Store, message_id: int, n: int, *, delivered: bool = True) -> int:
    finished = await store.inbound.finish(
        [message_id], "done", [OutboundDraft(1, "test", f"r{n}")]
    )
    [reply] = finished.out_ids
    if delivered:
        await store.outbound.update(reply, status="delivered")
    return reply


@pytest.fixture
def sqlite_store(store: Store) -> Store:
    if not store.db.sqlite:
        pytest.skip("reading ahead is for SQLite: its ids follow commit order")
    return store


async def test_an_answer_uses_the_turns_read_with_its_message_and_reads_nothing_more(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    ids = [await _exchange(store, n) for n in range(3)]
    cache = HistoryCache()
    assert len(await _window(cache, store, ids[-1] + 1)) == 5
    reads = _Reads(store)
    m3 = await _accept_reading(cache, store, 3)
    assert await _window(cache, store, m3 + 1) == ["m0", "r0", "m1", "r1", "m2", "r2", "m3"]
    await _answer(store, m3, 3)
    m4 = await _accept_reading(cache, store, 4)
    window = await _window(cache, store, m4 + 1)
    assert reads.turns == []  # both answers from the turns read as the message came in
    assert cache.read_ahead == 2
    assert window == await _window(HistoryCache(), store, m4 + 1)  # what a full read finds


async def test_turns_read_ahead_are_not_used_after_a_reset_meanwhile(sqlite_store: Store) -> None:
    store = sqlite_store
    ids = [await _exchange(store, n) for n in range(3)]
    cache = HistoryCache()
    await _window(cache, store, ids[-1] + 1)
    m3 = await _accept_reading(cache, store, 3)
    await store.history.reset(1, through_id=ids[-1])  # between the accept and the answer
    # what a read now finds: history starts after m2 (a read before the reset would
    # have brought every turn)
    assert await _window(cache, store, m3 + 1) == ["r2", "m3"]
    assert cache.read_ahead == 0


async def test_turns_read_ahead_are_not_used_when_a_turn_before_was_still_open(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    first = await _exchange(store, 0)
    cache = HistoryCache()
    await _window(cache, store, first + 1)
    m1 = await _accept_reading(cache, store, 1)
    assert await _window(cache, store, m1 + 1) == ["m0", "r0", "m1"]
    await _answer(store, m1, 1, delivered=False)
    m2 = await _accept_reading(cache, store, 2)  # r1 still on its way when read
    r1 = [m for m in await store.history.turns(1, before_id=None, limit=10) if m.text == "r1"]
    await store.outbound.update(r1[0].id, status="failed")  # and it fails for good
    window = await _window(cache, store, m2 + 1)
    assert "r1" not in window
    assert window[-1] == "m2"
    assert cache.read_ahead == 1  # m1's answer used its read; m2's did not


async def test_a_read_planned_before_an_earlier_answer_moved_the_cache_on_is_not_used(
    sqlite_store: Store,
) -> None:
    """m2's read is planned from the cache as it was before m1 was answered; m1's answer
    moves the cache on before m2's accept returns: m2's answer reads what it needs."""
    store = sqlite_store
    first = await _exchange(store, 0)
    cache = HistoryCache()
    await _window(cache, store, first + 1)
    m1 = await _accept_reading(cache, store, 1)
    m2_message = _msg("m2", 2)
    plan = cache.plan(1, limit=50, changes=store.inbound.context_changes)
    assert plan is not None
    assert await _window(cache, store, m1 + 1) == ["m0", "r0", "m1"]
    await _answer(store, m1, 1)
    accepted, conv, read = await store.inbound.accept_reading(m2_message, plan=plan)
    assert read is not None  # read, as planned
    cache.prefetched(conv, accepted.message_id + 1, plan, read)
    reads = _Reads(store)
    window = await _window(cache, store, accepted.message_id + 1)
    assert window == ["m0", "r0", "m1", "r1", "m2"]
    assert cache.read_ahead == 1  # m1's answer only
    assert len(reads.turns) == 1  # m2's read again
