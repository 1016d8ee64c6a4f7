"""Scheduled jobs in a cluster: one scheduler at a time, each due time fired once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from botkit import Bot, JobContext, Plugin
from botkit.clock import SystemClock
from botkit.plugin import ScheduledJob
from botkit.schedule import CronSchedule, IntervalSchedule, Schedule
from botkit.scheduler import _next_due
from botkit.store import Database
from botkit.store.models import Base, utcnow
from botkit.testing import InMemoryChannel, run_bot

EVERY = 0.2
LEASE = 1.0
LEASE_S = timedelta(seconds=LEASE)


def digest(label: str, fired: list[tuple[str, float]]) -> Plugin:
    plugin = Plugin("digest")

    @plugin.on_schedule(every=EVERY)
    async def tick(job: JobContext) -> None:
        fired.append((label, time.monotonic()))

    return plugin


def scheduler_bot(database_url: str, plugin: Plugin) -> Bot:
    return run_bot(
        database_url=database_url,
        channels=[InMemoryChannel()],
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
        await asyncio.sleep(0.01)


def holding(bot: Bot) -> bool:
    singleton = bot.scheduler.singleton
    return singleton is not None and singleton.held


async def job_runs(database_url: str) -> list[tuple[str, datetime, str]]:
    runs = Base.metadata.tables["job_runs"]
    database = Database(database_url)
    try:
        rows = await database.read(
            lambda conn: conn.execute(
                select(runs.c.job, runs.c.due_at, runs.c.holder).order_by(runs.c.due_at)
            ).all()
        )
    finally:
        await database.close()
    return [(job, due, holder) for job, due, holder in rows]


async def test_two_bots_on_one_database_fire_each_due_time_once(database_url: str) -> None:
    fired: list[tuple[str, float]] = []
    first = scheduler_bot(database_url, digest("first", fired))
    second = scheduler_bot(database_url, digest("second", fired))
    try:
        await first.start()
        await eventually(lambda: holding(first), 5)
        assert first.scheduler.singleton is not None
        assert first.scheduler.singleton.name == "scheduler"
        await second.start()
        await eventually(lambda: len(fired) >= 4, 10)
        assert not holding(second)
        await first.stop()  # releases the scheduler's lease: the second bot takes over
        await eventually(lambda: holding(second), 5 * LEASE)
        await eventually(lambda: sum(1 for who, _ in fired if who == "second") >= 4, 10)
    finally:
        await first.stop()
        await second.stop()
    runs = await job_runs(database_url)
    owners = {first.runtime.owner: "first", second.runtime.owner: "second"}
    # every due time recorded fired exactly once, by the bot that recorded it
    assert sorted(who for who, _ in fired) == sorted(owners[holder] for _, _, holder in runs)
    assert {job for job, _, _ in runs} == {"digest.tick"}
    # one scheduler at a time: all of the first bot's runs, then all of the second's
    labels = [who for who, _ in sorted(fired, key=lambda f: f[1])]
    assert labels == sorted(labels)
    # one chain of due times across both processes: the second continued the first's
    start = runs[0][1]
    for _, due, _ in runs:
        steps = (due - start) / timedelta(seconds=EVERY)
        assert abs(steps - round(steps)) < 1e-6, due


async def test_a_due_time_missed_by_less_than_two_leases_fires_late_and_older_ones_never(
    database_url: str,
) -> None:
    fired: list[str] = []
    plugin = Plugin("digest")

    @plugin.on_schedule(every=3600)
    async def recent(job: JobContext) -> None:
        fired.append("recent")

    @plugin.on_schedule(every=3600)
    async def stale(job: JobContext) -> None:
        fired.append("stale")

    bot = scheduler_bot(database_url, plugin)
    await bot.database.upgrade()
    hour = timedelta(hours=1)
    now = utcnow()
    # the last process fired both an hour ago: "recent" fell due half a lease ago (while
    # no process held the scheduler), "stale" half a minute ago
    assert await bot.store.leases.record_run("digest.recent", now - hour - 0.5 * LEASE_S, "old")
    assert await bot.store.leases.record_run(
        "digest.stale", now - hour - timedelta(seconds=30), "old"
    )
    try:
        await bot.start()
        await eventually(lambda: "recent" in fired, 5)
        await asyncio.sleep(0.3)
    finally:
        await bot.stop()
    assert fired == ["recent"]


# -- the chain of due times --------------------------------------------------------------

NOW = datetime(2026, 12, 4, 9, 0, 30, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def job(schedule: Schedule) -> ScheduledJob:
    async def func(job: JobContext) -> None:
        return None

    return ScheduledJob("digest", "tick", schedule, func)


def test_a_job_never_fired_starts_from_now() -> None:
    assert _next_due(job(IntervalSchedule(10)), None, NOW, GRACE) == NOW + timedelta(seconds=10)


def test_the_next_due_time_follows_the_last_one_fired_anywhere() -> None:
    last = NOW - timedelta(seconds=3)
    assert _next_due(job(IntervalSchedule(10)), last, NOW, GRACE) == last + timedelta(seconds=10)


def test_due_times_missed_within_the_grace_fire_once_late_together() -> None:
    last = NOW - timedelta(seconds=35)  # 25 s and 15 s and 5 s ago were missed
    due = _next_due(job(IntervalSchedule(10)), last, NOW, GRACE)
    assert due == NOW - timedelta(seconds=5)  # the latest missed one, fired at once


def test_due_times_missed_longer_than_the_grace_are_skipped_on_the_same_chain() -> None:
    last = NOW - timedelta(seconds=3605)  # an hour of due times missed
    due = _next_due(job(IntervalSchedule(10)), last, NOW, GRACE)
    assert due == NOW - timedelta(seconds=5)  # the latest within the grace, on the chain


def test_cron_due_times_missed_longer_than_the_grace_are_skipped() -> None:
    cron = job(CronSchedule.parse("0 9 * * *"))  # 09:00 daily
    yesterday = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert _next_due(cron, yesterday, NOW, GRACE) == datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    late = NOW + timedelta(minutes=5)  # 09:05:30: today's 09:00 is past the grace
    assert _next_due(cron, yesterday, late, GRACE) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
