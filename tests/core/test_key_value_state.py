"""Plugins' and adapters' key-value state: atomic updates under concurrent writers,
keys that expire by the database's clock, and expired keys pruned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from botkit.store import Database, Store
from botkit.store.models import Base
from botkit.testing import FakeModel, run_bot

_state = Base.metadata.tables["state"]


@pytest.fixture
async def other_store(database_url: str) -> AsyncIterator[Store]:
    """A second store on the same database, as another process has on PostgreSQL (its own
    pool and connections); on SQLite, which serves one process, the same file."""
    database = Database(database_url)
    try:
        yield Store(database)
    finally:
        await database.close()


def _plus_one(value: Any) -> int:
    return int(value) + 1


async def test_concurrent_updates_of_one_counter_lose_no_increment(
    store: Store, other_store: Store
) -> None:
    mine, theirs = store.state("plugin:c"), other_store.state("plugin:c")
    await mine.set("count", 0)
    results = await asyncio.gather(
        *(s.update("count", _plus_one) for _ in range(25) for s in (mine, theirs))
    )
    assert await mine.get("count") == 50
    assert sorted(results) == list(range(1, 51))  # each saw the one before it


async def test_concurrent_updates_of_a_new_key_create_it_once_and_count_every_one(
    store: Store, other_store: Store
) -> None:
    mine, theirs = store.state("plugin:c"), other_store.state("plugin:c")
    results = await asyncio.gather(
        *(s.update("fresh", _plus_one, default=0) for _ in range(10) for s in (mine, theirs))
    )
    assert sorted(results) == list(range(1, 21))
    assert await theirs.get("fresh") == 20


async def test_a_change_that_raises_changes_nothing(store: Store) -> None:
    state = store.state("plugin:c")
    await state.set("k", {"n": 1})

    def refuse(value: Any) -> Any:
        value["n"] = 99  # changes its own copy only
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await state.update("k", refuse)
    assert await state.get("k") == {"n": 1}
    assert await state.update("k", lambda v: {**v, "m": 2}) == {"n": 1, "m": 2}


async def test_a_key_set_with_a_ttl_is_gone_after_it(store: Store) -> None:
    state = store.state("adapter:x")
    await state.set("short", 1, ttl=0.3)
    await state.set("long", 2, ttl=timedelta(hours=1))
    await state.set("forever", 3)
    assert await state.get("short") == 1
    assert await state.keys() == ["forever", "long", "short"]
    await asyncio.sleep(0.5)
    assert await state.get("short", "gone") == "gone"
    assert await state.keys() == ["forever", "long"]
    assert (await state.get("long"), await state.get("forever")) == (2, 3)
    # an expired key updated starts from the default again, and then lives for good
    assert await state.update("short", _plus_one, default=10) == 11
    assert await state.get("short") == 11


async def test_setting_a_key_again_without_a_ttl_keeps_it_for_good(store: Store) -> None:
    state = store.state("adapter:x")
    await state.set("k", 1, ttl=0.2)
    await state.set("k", 2)
    await asyncio.sleep(0.3)
    assert await state.get("k") == 2


async def test_an_update_keeps_the_expiry_unless_given_a_new_one(store: Store) -> None:
    state = store.state("adapter:x")
    await state.set("kept", 1, ttl=0.3)
    await state.update("kept", _plus_one)  # keeps its expiry
    await state.set("renewed", 1, ttl=0.3)
    await state.update("renewed", _plus_one, ttl=timedelta(hours=1))
    await asyncio.sleep(0.5)
    assert await state.get("kept") is None
    assert await state.get("renewed") == 2


async def _rows(store: Store) -> set[tuple[str, str]]:
    query = select(_state.c.namespace, _state.c.key)
    return await store.db.read(lambda conn: {(n, k) for n, k in conn.execute(query).all()})


async def test_pruning_deletes_expired_keys_of_every_namespace_and_only_those(
    store: Store,
) -> None:
    await store.state("a").set("old", 1, ttl=0.1)
    await store.state("b").set("old", 1, ttl=0.1)
    await store.state("a").set("live", 1, ttl=3600)
    await store.state("a").set("forever", 1)
    await asyncio.sleep(0.3)
    assert await store.prune_state() == 2
    assert await _rows(store) == {("a", "live"), ("a", "forever")}
    assert await store.prune_state() == 0


async def test_a_running_bot_prunes_expired_keys_by_itself() -> None:
    async with run_bot(plugins=[], model=FakeModel(), config={"bot": {"claim_lease": 1}}) as bot:
        await bot.store.state("adapter:x").set("delivery:1", [1], ttl=0.05)
        await bot.store.state("adapter:x").set("position", 1)
        for _ in range(100):  # its maintenance runs every third of a lease
            if await _rows(bot.store) == {("adapter:x", "position")}:
                break
            await asyncio.sleep(0.1)
        assert await _rows(bot.store) == {("adapter:x", "position")}
