"""Jobs plugins schedule for a time (``ctx.schedule``): stored, fired once at their due
time, cancelled, recurring, surviving restarts; the test kit's clock fires them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from botkit import (
    ConversationRef,
    JobRun,
    Plugin,
    PluginError,
    PluginRuntime,
    Reply,
    SentMessage,
)
from botkit.jobs import Recurrence
from botkit.testing import FakeClock, InMemoryChannel, TestBot, run_bot

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
ROOM = ConversationRef("test", "room")


@dataclass
class Fired:
    runs: list[JobRun] = field(default_factory=list)
    fail: int = 0  # how many runs raise before one succeeds

    @property
    def data(self) -> list[Any]:
        return [run.data for run in self.runs]


def jobs_plugin(fired: Fired, *, attempts: int = 3) -> Plugin:
    plugin = Plugin("jobs")

    @plugin.job("ping", attempts=attempts)
    async def ping(run: JobRun) -> None:
        fired.runs.append(run)
        if run.conversation is not None:
            await run.reply(f"ping {run.data}")
        if fired.fail > 0:
            fired.fail -= 1
            raise RuntimeError("flaky")

    return plugin


def runtime(bot: TestBot) -> PluginRuntime:
    return PluginRuntime(bot.bot.runtime, "jobs")


async def test_a_job_fires_once_at_its_due_time_with_its_data() -> None:
    fired = Fired()
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        job_id = await runtime(bot).schedule(job="ping", at=timedelta(minutes=10), data={"n": 1})
        await bot.advance(timedelta(minutes=9, seconds=59))
        assert fired.runs == []
        await bot.advance(timedelta(seconds=1))
        [run] = fired.runs
        assert (run.id, run.job, run.data, run.attempt) == (job_id, "ping", {"n": 1}, 1)
        assert run.due_at == START + timedelta(minutes=10)
        await bot.advance(timedelta(days=2))
        assert len(fired.runs) == 1
        assert await runtime(bot).pending_jobs() == []


async def test_a_job_at_an_aware_time_in_any_zone_fires_at_that_instant() -> None:
    fired = Fired()
    berlin = datetime(2026, 12, 4, 11, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 10:00 UTC
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        await runtime(bot).schedule(job="ping", at=berlin)
        await bot.advance(timedelta(minutes=59))
        assert fired.runs == []
        await bot.advance(timedelta(minutes=1))
        assert len(fired.runs) == 1


async def test_a_jobs_message_arrives_in_its_conversation_through_the_outbox() -> None:
    fired = Fired()
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        await runtime(bot).schedule(job="ping", at=timedelta(hours=1), data=7, conversation=ROOM)
        sent = await bot.advance(timedelta(hours=1))
        assert [(s.conversation, s.text) for s in sent] == [(ROOM, "ping 7")]
        conversation_id = await bot.store.history.conversation_id(ROOM)
        [stored] = await bot.store.history.turns(conversation_id, before_id=None, limit=10)
        assert (stored.direction, stored.status, stored.text) == ("out", "delivered", "ping 7")


async def test_a_cancelled_job_never_fires_and_only_its_plugin_can_cancel_it() -> None:
    fired = Fired()
    other = Plugin("other")
    async with run_bot(plugins=[jobs_plugin(fired), other], clock=FakeClock(START)) as bot:
        jobs = runtime(bot)
        first = await jobs.schedule(job="ping", at=timedelta(minutes=5), data="first")
        second = await jobs.schedule(job="ping", at=timedelta(minutes=5), data="second")
        assert not await PluginRuntime(bot.bot.runtime, "other").cancel_job(first)
        assert await jobs.cancel_job(first)
        assert not await jobs.cancel_job(first)  # already cancelled
        assert not await jobs.cancel_job(9999)
        [left] = await jobs.pending_jobs()
        assert left.id == second
        await bot.advance(timedelta(minutes=5))
        assert fired.data == ["second"]
        assert not await jobs.cancel_job(second)  # it has fired


async def test_pending_jobs_are_listed_soonest_first_by_name_and_conversation() -> None:
    fired = Fired()
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        jobs = runtime(bot)
        late = await jobs.schedule(job="ping", at=timedelta(hours=2), conversation=ROOM)
        soon = await jobs.schedule(job="ping", at=timedelta(hours=1), data={"a": [1]})
        hourly = await jobs.schedule(job="ping", every=3600, at=timedelta(hours=3))
        listed = await jobs.pending_jobs()
        assert [j.id for j in listed] == [soon, late, hourly]
        assert (listed[0].data, listed[0].conversation) == ({"a": [1]}, None)
        assert (listed[1].conversation, listed[1].recurrence) == (ROOM, None)
        assert listed[2].recurrence == Recurrence(every=3600)
        assert [j.id for j in await jobs.pending_jobs(conversation=ROOM)] == [late]
        assert await jobs.pending_jobs(job="nothing") == []


async def test_scheduling_what_cannot_run_is_a_clear_error_and_stores_nothing() -> None:
    fired = Fired()
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        jobs = runtime(bot)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"job": "pong", "at": timedelta(1)}, "has no job named 'pong'"),
            ({"job": "ping", "at": datetime(2026, 12, 5, 9, 0)}, "aware datetime"),
            ({"job": "ping", "at": timedelta(1), "data": {1, 2}}, "must be JSON"),
            ({"job": "ping", "every": 60, "cron": "@daily"}, "not both"),
            ({"job": "ping", "cron": "0 25 * * *"}, "hour field '25' is out of range"),
            ({"job": "ping", "cron": "@daily", "timezone": "Mars/Olympus"}, "time zone"),
            ({"job": "ping", "every": 0}, "positive"),
            ({"job": "ping"}, "needs at="),
        ]
        for kwargs, message in cases:
            with pytest.raises(ValueError, match=message):
                await jobs.schedule(**kwargs)
        assert await jobs.pending_jobs() == []


async def test_scheduling_again_with_the_same_key_adds_no_second_job() -> None:
    fired = Fired()
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        jobs = runtime(bot)
        first = await jobs.schedule(job="ping", at=timedelta(minutes=1), key="message:42")
        again = await jobs.schedule(job="ping", at=timedelta(minutes=2), key="message:42")
        assert again == first
        await bot.advance(timedelta(minutes=5))
        assert len(fired.runs) == 1


async def test_an_interval_job_recurs_on_its_chain_and_missed_times_fire_once() -> None:
    fired = Fired()
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        jobs = runtime(bot)
        job_id = await jobs.schedule(job="ping", every=timedelta(hours=1))
        for _ in range(3):
            await bot.advance(timedelta(hours=1))
        assert [r.due_at for r in fired.runs] == [START + timedelta(hours=h) for h in (1, 2, 3)]
        await bot.advance(timedelta(hours=5, minutes=30))  # 4:00 ... 8:00 missed at once
        assert len(fired.runs) == 4
        [info] = await jobs.pending_jobs()
        assert (info.id, info.due_at, info.runs) == (job_id, START + timedelta(hours=9), 4)
        assert await jobs.cancel_job(job_id)
        await bot.advance(timedelta(hours=3))
        assert len(fired.runs) == 4


async def test_a_cron_job_recurs_on_the_wall_clock_of_its_zone_across_dst() -> None:
    fired = Fired()
    before_dst = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # Berlin changes on 29 March
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(before_dst)) as bot:
        await runtime(bot).schedule(job="ping", cron="0 9 * * *", timezone="Europe/Berlin")
        for _ in range(3):
            await bot.advance(timedelta(days=1))
    due = [r.due_at.astimezone(UTC) for r in fired.runs]
    assert due == [
        datetime(2026, 3, 28, 8, 0, tzinfo=UTC),  # 09:00 CET
        datetime(2026, 3, 29, 7, 0, tzinfo=UTC),  # 09:00 CEST
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
    ]


async def test_a_job_that_raises_is_retried_with_backoff_and_sends_only_when_it_succeeds() -> None:
    fired = Fired(fail=1)
    async with run_bot(plugins=[jobs_plugin(fired)], clock=FakeClock(START)) as bot:
        await runtime(bot).schedule(job="ping", at=timedelta(0), data=1, conversation=ROOM)
        assert await bot.advance(0) == []  # it raised: its message was not sent
        assert [r.attempt for r in fired.runs] == [1]
        assert await bot.advance(29) == []
        sent = await bot.advance(1)  # 30 s later
        assert [r.attempt for r in fired.runs] == [1, 2]
        assert [s.text for s in sent] == ["ping 1"]


async def test_a_job_that_keeps_raising_is_failed_after_its_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fired = Fired(fail=10)
    async with run_bot(plugins=[jobs_plugin(fired, attempts=2)], clock=FakeClock(START)) as bot:
        job_id = await runtime(bot).schedule(job="ping", at=timedelta(0))
        await bot.advance(0)
        await bot.advance(timedelta(hours=2))
        assert [r.attempt for r in fired.runs] == [1, 2]
        record = await bot.store.jobs.get(job_id)
        assert record is not None
        assert (record.status, record.error) == ("failed", "RuntimeError: flaky")
        await bot.advance(timedelta(days=1))
        assert len(fired.runs) == 2
    assert "job jobs.ping #1 failed (try 2 of 2)" in caplog.text


async def test_a_job_due_while_no_bot_ran_fires_once_when_one_starts(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    fired = Fired()
    plugin = jobs_plugin(fired)
    async with run_bot(plugins=[plugin], database_url=url, clock=FakeClock(START)) as bot:
        await runtime(bot).schedule(job="ping", at=timedelta(hours=1), data="x", conversation=ROOM)
    assert fired.runs == []
    later = FakeClock(START + timedelta(days=1))  # the bot was down when it fell due
    async with run_bot(plugins=[plugin], database_url=url, clock=later) as bot:
        sent = await bot.advance(0)
        assert [s.text for s in sent] == ["ping x"]
        assert [r.due_at for r in fired.runs] == [START + timedelta(hours=1)]
    async with run_bot(plugins=[plugin], database_url=url, clock=later) as bot:
        assert await bot.advance(timedelta(days=1)) == []
    assert len(fired.runs) == 1


async def test_a_job_cut_short_by_a_stop_runs_again_after_the_restart(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    started = asyncio.Event()
    runs: list[int] = []
    plugin = Plugin("slow")

    @plugin.job("work")
    async def work(run: JobRun) -> None:
        runs.append(run.attempt)
        await run.reply("done")
        if len(runs) == 1:
            started.set()
            await asyncio.sleep(60)  # the stop cancels it here

    async with run_bot(plugins=[plugin], database_url=url, clock=FakeClock(START)) as bot:
        await PluginRuntime(bot.bot.runtime, "slow").schedule(
            job="work", at=timedelta(0), conversation=ROOM
        )
        await asyncio.wait_for(started.wait(), 10)
    assert bot.sent == []  # the run was cut short: nothing it said went out
    async with run_bot(plugins=[plugin], database_url=url, clock=FakeClock(START)) as bot:
        sent = await bot.advance(0)
    assert runs == [1, 1]  # given back: a stop is not the job's failure
    assert [s.text for s in sent] == ["done"]


def test_job_names_are_checked_when_registered() -> None:
    plugin = Plugin("jobs")
    with pytest.raises(PluginError, match="not a valid job name"):
        plugin.job("Bad Name")
    plugin.job("ok")(jobs_plugin(Fired()).job_handlers[0].func)
    with pytest.raises(PluginError, match="registered twice"):
        plugin.job("ok")
    with pytest.raises(PluginError, match="attempts"):
        plugin.job("other", attempts=0)


async def test_a_recurring_job_cancelled_while_it_runs_finishes_that_run_and_stops() -> None:
    running, release = asyncio.Event(), asyncio.Event()
    runs: list[int] = []
    plugin = Plugin("slow")

    @plugin.job("tick")
    async def tick(run: JobRun) -> None:
        runs.append(run.id)
        await run.reply("tick")
        running.set()
        await release.wait()

    async with run_bot(plugins=[plugin], clock=FakeClock(START)) as bot:
        jobs = PluginRuntime(bot.bot.runtime, "slow")
        job_id = await jobs.schedule(job="tick", every=60, conversation=ROOM)
        advancing = asyncio.ensure_future(bot.advance(60))
        await asyncio.wait_for(running.wait(), 10)
        [info] = await jobs.pending_jobs()
        assert info.running
        assert await jobs.cancel_job(job_id)
        release.set()
        assert [s.text for s in await advancing] == ["tick"]
        assert await bot.advance(600) == []
        assert await jobs.pending_jobs() == []
    assert runs == [job_id]


class _SlowChannel(InMemoryChannel):
    """Holds each send until ``released``; ``sending`` is set once one is under way."""

    def __init__(self) -> None:
        super().__init__("test")
        self.sending = asyncio.Event()
        self.released = asyncio.Event()

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        self.sending.set()
        await self.released.wait()
        return await super().send(conversation, reply, delivery_id=delivery_id)


async def test_a_stop_while_a_jobs_message_is_being_sent_lets_that_send_finish(
    tmp_path: Any,
) -> None:
    """The run had finished and stored its message; a stop cancels the running jobs,
    but not the delivery under way: left half-sent, the next process would find it in
    doubt and (on a channel it cannot ask) send it again."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    fired = Fired()
    channel = _SlowChannel()
    bot = run_bot(
        plugins=[jobs_plugin(fired)], channels=[channel], database_url=url, clock=FakeClock(START)
    )
    await bot.start()
    try:
        await runtime(bot).schedule(job="ping", at=timedelta(0), data=1, conversation=ROOM)
        await asyncio.wait_for(channel.sending.wait(), 10)
        stopping = asyncio.create_task(bot.stop())
        await asyncio.sleep(0.2)  # the stop has cancelled the jobs by now
        channel.released.set()
        await asyncio.wait_for(stopping, 20)
    finally:
        channel.released.set()
        await bot.stop()
    assert [s.text for s in channel.sent] == ["ping 1"]
    again = InMemoryChannel("test")  # the next process: nothing is left to send
    async with run_bot(
        plugins=[jobs_plugin(fired)], channels=[again], database_url=url, clock=FakeClock(START)
    ) as restarted:
        await restarted.advance(timedelta(minutes=5))
    assert again.sent == []
    assert len(fired.runs) == 1


async def test_a_stop_after_a_jobs_handler_returned_records_that_run_and_never_runs_it_again(
    tmp_path: Any,
) -> None:
    """A stop cancels running jobs; one whose handler had already returned is complete:
    its end and its message are stored and sent all the same, so it does not run again
    after the restart (given back, it would, and do twice what it did)."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    runs: list[int] = []
    returned = asyncio.Event()
    finishing = asyncio.Event()
    plugin = Plugin("once")

    @plugin.job("work")
    async def work(run: JobRun) -> None:
        runs.append(run.attempt)
        await run.reply("done")
        returned.set()

    bot = run_bot(plugins=[plugin], database_url=url, clock=FakeClock(START))
    await bot.start()
    store = bot.bot.store
    real = store.history.conversation_id

    async def held(ref: ConversationRef) -> int:  # the run's end is being stored: hold it
        if returned.is_set():
            finishing.set()
            await asyncio.sleep(0.3)  # the stop arrives meanwhile
        return await real(ref)

    store.history.conversation_id = held  # type: ignore[method-assign]
    try:
        await PluginRuntime(bot.bot.runtime, "once").schedule(
            job="work", at=timedelta(0), conversation=ROOM
        )
        await asyncio.wait_for(finishing.wait(), 10)
    finally:
        await bot.stop()
    assert runs == [1]
    assert [s.text for s in bot.sent] == ["done"]
    async with run_bot(plugins=[plugin], database_url=url, clock=FakeClock(START)) as again:
        assert await again.advance(timedelta(hours=1)) == []
    assert runs == [1]
