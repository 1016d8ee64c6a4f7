"""Scheduled jobs across processes: claimed by one, fenced, taken over when it dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from botkit import Bot, ClaimLostError, ConversationRef, JobRun, Plugin, PluginRuntime
from botkit.clock import SystemClock
from botkit.store import Database, NewJob, OutboundDraft, Store
from botkit.store.models import utcnow
from botkit.testing import InMemoryChannel, run_bot

# long enough that a loaded 2-core machine renews in time: a claim that lapses is run again
# by design (a job runs at least once; its replies go out once), which "once" here would miss
LEASE = 2.0
ROOM = ConversationRef("test", "room")


def ping_plugin(fired: list[tuple[str, int, int]], label: str) -> Plugin:
    plugin = Plugin("jobs")

    @plugin.job("ping")
    async def ping(run: JobRun) -> None:
        fired.append((label, run.id, run.attempt))
        await run.reply(f"ping {run.data}")

    return plugin


def job_bot(database_url: str, plugin: Plugin, adapter: InMemoryChannel) -> Bot:
    return run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"singleton_lease": LEASE}},
        clock=SystemClock(),
    ).bot


async def eventually(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {within} s")
        await asyncio.sleep(0.02)


def holding(bot: Bot) -> bool:
    singleton = bot.scheduler.singleton
    return singleton is not None and singleton.held


async def test_two_bots_sharing_one_database_fire_each_job_once(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serves one process; several processes share PostgreSQL")
    fired: list[tuple[str, int, int]] = []
    adapters = InMemoryChannel(), InMemoryChannel()
    first = job_bot(database_url, ping_plugin(fired, "first"), adapters[0])
    second = job_bot(database_url, ping_plugin(fired, "second"), adapters[1])
    ids: list[int] = []
    try:
        await first.start()
        await eventually(lambda: holding(first), 5)
        await second.start()
        for index, bot in enumerate([first, second] * 10):  # scheduled in both processes
            ids.append(
                await PluginRuntime(bot.runtime, "jobs").schedule(
                    job="ping", at=timedelta(seconds=0.1 * index), data=index, conversation=ROOM
                )
            )
        await eventually(lambda: len(fired) >= 10, 15)
        await first.stop()  # a hand-over mid-way: the second takes the scheduler
        await eventually(lambda: len({job for _, job, _ in fired}) == 20, 15)
        await asyncio.sleep(3 * LEASE)  # time for a second firing to show, if any
    finally:
        await first.stop()
        await second.stop()
    assert sorted(job for _, job, _ in fired) == sorted(ids)  # each once
    assert {label for label, _, _ in fired} == {"first", "second"}
    texts = sorted(s.text for adapter in adapters for s in adapter.sent)
    assert texts == sorted(f"ping {i}" for i in range(20))


async def test_two_schedulers_claiming_at_once_never_claim_one_job_twice(
    database_url: str,
) -> None:
    databases = [Database(database_url) for _ in range(2)]
    await databases[0].upgrade()
    stores = [Store(db) for db in databases]
    try:
        due = utcnow() - timedelta(seconds=1)
        for _ in range(30):
            await stores[0].jobs.add(NewJob("jobs", "ping", due))
        claims = await asyncio.gather(
            *(
                store.jobs.claim_due(
                    now=utcnow(), plugins={"jobs"}, holder=f"p{i}", seconds=30, limit=20
                )
                for i, store in enumerate(stores * 3)
            )
        )
    finally:
        for db in databases:
            await db.close()
    claimed = [record.id for batch in claims for record in batch]
    assert len(claimed) == 30
    assert len(set(claimed)) == 30


async def test_a_scheduler_that_lost_its_lease_claims_nothing(store: Store) -> None:
    await store.jobs.add(NewJob("jobs", "ping", utcnow() - timedelta(seconds=1)))
    taken = await store.leases.take("scheduler", "a", 30)
    assert taken.token is not None
    stale = ("scheduler", taken.token)
    await store.leases.release("scheduler", "a")
    token = (await store.leases.take("scheduler", "b", 30)).token  # another process's now
    assert token is not None

    async def claim(holder: str, fence: tuple[str, int]) -> int:
        claimed = await store.jobs.claim_due(
            now=utcnow(), plugins={"jobs"}, holder=holder, seconds=30, limit=5, fence=fence
        )
        return len(claimed)

    assert await claim("a", stale) == 0
    assert await claim("b", ("scheduler", token)) == 1


async def test_a_process_killed_mid_job_fires_it_again_after_its_claim_and_sends_once(
    database_url: str,
) -> None:
    fired: list[tuple[str, int, int]] = []
    adapter = InMemoryChannel()
    bot = job_bot(database_url, ping_plugin(fired, "bot"), adapter)
    await bot.database.upgrade()
    conversation_id = await bot.store.history.conversation_id(ROOM)
    job_id = await bot.store.jobs.add(
        NewJob("jobs", "ping", utcnow(), data="x", conversation_id=conversation_id)
    )
    # a process claimed it, and was killed while the job ran: its claim lapses
    [dead] = await bot.store.jobs.claim_due(
        now=utcnow(), plugins={"jobs"}, holder="dead", seconds=LEASE, limit=5
    )
    try:
        await bot.start()
        await eventually(lambda: len(adapter.sent) == 1, 10 * LEASE)
        await asyncio.sleep(LEASE)
    finally:
        await bot.stop()
    assert fired == [("bot", job_id, 2)]  # at least once: the second try of that due time
    assert [s.text for s in adapter.sent] == ["ping x"]
    # the dead process, had it only stalled, can record nothing when it wakes
    draft = OutboundDraft(conversation_id, "test", "ping x (stale)")
    store = Store(Database(database_url))
    try:
        with pytest.raises(ClaimLostError):
            await store.jobs.finish(
                job_id, ("dead", dead.claim_token), status="done", replies=[draft]
            )
        history = await store.history.turns(conversation_id, before_id=None, limit=10)
        assert [m.text for m in history] == ["ping x"]
        record = await store.jobs.get(job_id)
        assert record is not None
        assert record.status == "done"
    finally:
        await store.db.close()
