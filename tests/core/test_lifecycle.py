"""Starting and stopping: scheduled jobs, hooks, graceful stop, and SQLite under load."""

from __future__ import annotations

import asyncio

import pytest

from botkit import (
    Context,
    ConversationRef,
    JobContext,
    Message,
    Plugin,
    PluginRuntime,
    StoreError,
)
from botkit.store import Database
from tests.fakes.bots import make_bot
from tests.fakes.recording_adapter import RecordingAdapter


async def test_scheduled_jobs_run_and_can_message_any_conversation(database_url: str) -> None:
    plugin = Plugin("digest")
    runs: list[int] = []

    @plugin.on_schedule(every=0.05)
    async def tick(job: JobContext) -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            await job.send(ConversationRef("test", "announcements"), "digest #2")

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
        await asyncio.wait_for(adapter.delivered.wait(), 5)
    assert len(runs) >= 2
    assert [(s.conversation.chat_id, s.text) for s in adapter.sent] == [
        ("announcements", "digest #2")
    ]


async def test_a_failing_job_is_logged_and_runs_again(database_url: str) -> None:
    plugin = Plugin("flaky")
    runs: list[int] = []

    @plugin.on_schedule(every=0.02)
    async def flaky(job: JobContext) -> None:
        runs.append(1)
        raise RuntimeError("transient")

    async with make_bot(database_url, {"test": RecordingAdapter()}, plugins=[plugin]):
        for _ in range(100):
            if len(runs) >= 3:
                break
            await asyncio.sleep(0.02)
    assert len(runs) >= 3


async def test_startup_and_shutdown_hooks_run_once_in_order(database_url: str) -> None:
    plugin = Plugin("hooks")
    events: list[str] = []

    @plugin.on_startup
    async def up(runtime: PluginRuntime) -> None:
        await runtime.state.set("started", True)
        events.append("up")

    @plugin.on_shutdown
    async def down(runtime: PluginRuntime) -> None:
        events.append(f"down:{await runtime.state.get('started')}")

    async with make_bot(database_url, {"test": RecordingAdapter()}, plugins=[plugin]):
        events.append("running")
    assert events == ["up", "running", "down:True"]


async def test_a_stop_past_the_grace_period_hands_work_back_for_the_next_start(
    database_url: str,
) -> None:
    plugin = Plugin("slow")
    release = asyncio.Event()
    started = asyncio.Event()

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        started.set()
        await release.wait()
        return "finally"

    adapter = RecordingAdapter()
    bot = make_bot(database_url, {"test": adapter}, plugins=[plugin], bot={"shutdown_grace": 0.1})
    async with bot:
        await adapter.say("are you there?")
        await started.wait()
    assert adapter.sent == []
    [row] = await _unfinished(database_url)
    assert row == "are you there?"

    release.set()
    adapter2 = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter2}, plugins=[plugin]) as bot2:
        await bot2.dispatcher.idle()
    assert [s.text for s in adapter2.sent] == ["finally"]
    assert await _unfinished(database_url) == []


async def _unfinished(database_url: str) -> list[str]:
    from botkit.store import Store

    database = Database(database_url)
    try:
        return [r.text for r in await Store(database).unfinished_inbound()]
    finally:
        await database.close()


async def test_a_stopping_bot_refuses_new_messages_so_the_channel_keeps_them(
    database_url: str,
) -> None:
    adapter = RecordingAdapter()
    bot = make_bot(database_url, {"test": adapter})
    await bot.start()
    inbox = bot.inbox
    await bot.stop()
    adapter.inbox = inbox
    with pytest.raises(StoreError, match="shutting down"):
        await adapter.say("too late")


async def test_many_conversations_write_at_once_without_lock_errors(database_url: str) -> None:
    plugin = Plugin("echo")

    @plugin.on_message()
    async def echo(message: Message, ctx: Context) -> str:
        await ctx.state.set(message.conversation.chat_id, message.text)
        return message.text

    adapter = RecordingAdapter()
    async with make_bot(
        database_url, {"test": adapter}, plugins=[plugin], bot={"max_in_flight": 50}
    ) as bot:
        ids = await asyncio.gather(*(adapter.say(f"m{i}", chat=f"c{i}") for i in range(60)))
        await asyncio.gather(*(bot.inbox.wait_done(i) for i in ids))
        statuses = {r.status for r in await bot.store.messages(ids)}
    assert statuses == {"done"}
    assert sorted(s.text for s in adapter.sent) == sorted(f"m{i}" for i in range(60))


async def test_two_processes_on_one_database_answer_each_message_once(database_url: str) -> None:
    plugin = Plugin("slow")

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        await asyncio.sleep(0.3)
        return f"re {message.text}"

    first, second = RecordingAdapter(), RecordingAdapter()
    lease = {"claim_lease": 1.0}
    async with (
        make_bot(database_url, {"test": first}, plugins=[plugin], bot=lease) as bot_a,
        make_bot(database_url, {"test": second}, plugins=[plugin], bot=lease) as bot_b,
    ):
        ids = [await first.say(f"m{i}") for i in range(4)]
        for message_id in ids:
            await bot_a.inbox.wait_done(message_id)
        await asyncio.sleep(1.0)  # several claim renewals and sweeps by both
        await bot_a.dispatcher.idle()
        await bot_b.dispatcher.idle()
    sent = [s.text for s in first.sent + second.sent]
    assert sorted(sent) == [f"re m{i}" for i in range(4)]
