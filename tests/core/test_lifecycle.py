"""Starting and stopping: scheduled jobs, hooks, graceful stop, and SQLite under load."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from botkit import (
    Context,
    ConversationRef,
    JobContext,
    Message,
    Plugin,
    PluginRuntime,
    StoreError,
)
from botkit.clock import SystemClock
from botkit.llm import ChatRequest, StandInModel
from botkit.store import Database
from botkit.testing import InMemoryChannel, run_bot
from tests.adapters.slack.slack_helpers import SIGNING_SECRET, corpus, sign
from tests.fakes.openai_server import FakeOpenAI, RecordedRequest, completion
from tests.fakes.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parents[2]


async def test_scheduled_jobs_run_and_can_message_any_conversation(database_url: str) -> None:
    plugin = Plugin("digest")
    runs: list[int] = []

    @plugin.on_schedule(every=0.05)
    async def tick(job: JobContext) -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            await job.send(ConversationRef("test", "announcements"), "digest #2")

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        clock=SystemClock(),
    ).bot:
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

    async with run_bot(
        database_url=database_url,
        channels=[InMemoryChannel()],
        plugins=[plugin],
        model="config",
        clock=SystemClock(),
    ).bot:
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

    async with run_bot(
        database_url=database_url,
        channels=[InMemoryChannel()],
        plugins=[plugin],
        model="config",
        clock=SystemClock(),
    ).bot:
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

    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"shutdown_grace": 0.1}},
        clock=SystemClock(),
    ).bot
    async with bot:
        await adapter.receive("are you there?")
        await started.wait()
    assert adapter.sent == []
    [row] = await _unfinished(database_url)
    assert row == "are you there?"

    release.set()
    adapter2 = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter2],
        plugins=[plugin],
        model="config",
        clock=SystemClock(),
    ).bot as bot2:
        await bot2.dispatcher.idle()
    assert [s.text for s in adapter2.sent] == ["finally"]
    assert await _unfinished(database_url) == []


async def _unfinished(database_url: str) -> list[str]:
    from botkit.store import Store

    database = Database(database_url)
    try:
        return [r.text for r in await Store(database).inbound.unfinished()]
    finally:
        await database.close()


async def test_a_stopping_bot_refuses_new_messages_so_the_channel_keeps_them(
    database_url: str,
) -> None:
    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url, channels=[adapter], model="config", clock=SystemClock()
    ).bot
    await bot.start()
    inbox = bot.inbox
    await bot.stop()
    await adapter.start(inbox)  # the channel still delivers, as a real one would
    with pytest.raises(StoreError, match="shutting down"):
        await adapter.receive("too late")


async def test_many_conversations_write_at_once_without_lock_errors(database_url: str) -> None:
    plugin = Plugin("echo")

    @plugin.on_message()
    async def echo(message: Message, ctx: Context) -> str:
        await ctx.state.set(message.conversation.chat_id, message.text)
        return message.text

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"max_in_flight": 50}},
        clock=SystemClock(),
    ).bot as bot:
        ids = await asyncio.gather(*(adapter.receive(f"m{i}", chat=f"c{i}") for i in range(60)))
        await asyncio.gather(*(bot.inbox.wait_done(i) for i in ids))
        statuses = {r.status for r in await bot.store.history.messages(ids)}
    assert statuses == {"done"}
    assert sorted(s.text for s in adapter.sent) == sorted(f"m{i}" for i in range(60))


async def test_two_processes_on_one_database_answer_each_message_once(database_url: str) -> None:
    plugin = Plugin("slow")

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        await asyncio.sleep(0.3)
        return f"re {message.text}"

    first, second = InMemoryChannel(), InMemoryChannel()
    lease = {"claim_lease": 1.0}
    async with (
        run_bot(
            database_url=database_url,
            channels=[first],
            plugins=[plugin],
            model="config",
            config={"bot": lease},
            clock=SystemClock(),
        ).bot as bot_a,
        run_bot(
            database_url=database_url,
            channels=[second],
            plugins=[plugin],
            model="config",
            config={"bot": lease},
            clock=SystemClock(),
        ).bot as bot_b,
    ):
        ids = [await first.receive(f"m{i}") for i in range(4)]
        for message_id in ids:
            await bot_a.inbox.wait_done(message_id)
        await asyncio.sleep(1.0)  # several claim renewals and sweeps by both
        await bot_a.dispatcher.idle()
        await bot_b.dispatcher.idle()
    sent = [s.text for s in first.sent + second.sent]
    assert sorted(sent) == [f"re m{i}" for i in range(4)]


# A real `botkit run` process: ready, then draining on SIGTERM, then gone on a second signal.


class _ModelGate:
    """A chat-completions reply that waits until the test lets it go."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(
        self, request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        self.called.set()
        closing = asyncio.ensure_future(fake.closing.wait())
        released = asyncio.ensure_future(self.release.wait())
        await asyncio.wait([closing, released], return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        released.cancel()
        return await completion("the answer")(request, recorded, fake)


class _BotProcess:
    """``python -m botkit run`` with the Slack adapter over HTTP, its log collected."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self.port: int | None = None
        self._listening = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, tmp_path: Path, database_url: str, slack: FakeSlack, model_url: str
    ) -> _BotProcess:
        (tmp_path / "botkit.toml").write_text(
            "[bot]\nstream = false\nshutdown_grace = 30.0\nclaim_lease = 1.0\n"
            f'[database]\nurl = "{database_url}"\nauto_migrate = true\n'
            f'[llm]\nbase_url = "{model_url}"\nmax_retries = 0\n'
            "[web]\nport = 0\n"
            f'[adapters.slack]\ntransport = "http"\napi_url = "{slack.base_url}"\n'
            "post_interval = 0.0\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTKIT_", "OPENAI_"))}
        env.update(
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            OPENAI_API_KEY="sk-test",
            PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("", "adapters", "plugins")),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botkit",
            "run",
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        bot = cls(process)
        await asyncio.wait_for(bot._listening.wait(), 30)
        return bot

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace")
            self.log.append(line)
            found = re.search(r"web server listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                self._listening.set()

    async def logged(self, text: str) -> None:
        """Wait until the bot's log has a line containing ``text``."""
        for _ in range(300):
            if any(text in line for line in self.log):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never logged {text!r}: {''.join(self.log)[-3000:]}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, http: aiohttp.ClientSession, reason: str | None = None) -> None:
        """Wait until /readyz says ready (or unavailable for ``reason``)."""
        want = (200, None) if reason is None else (503, reason)
        for _ in range(300):
            async with http.get(f"{self.base}/readyz") as response:
                if (response.status, (await response.json()).get("reason")) == want:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"/readyz never said {want}: {''.join(self.log)[-3000:]}")

    async def exit_code(self, within: float) -> int:
        try:
            code = await asyncio.wait_for(self.process.wait(), within)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            await self._reader
        return code

    async def post_event(
        self, http: aiohttp.ClientSession, body: dict[str, Any], secret: str = SIGNING_SECRET
    ) -> tuple[int, str | None]:
        raw = json.dumps(body).encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(raw, ts, secret),
        }
        async with http.post(f"{self.base}/slack/events", data=raw, headers=headers) as r:
            return r.status, r.headers.get("Retry-After")


def _mention(text: str, event_id: str) -> dict[str, Any]:
    body = corpus("02-app_mention-channel-authed_users.json")
    body["event"]["text"] = f"<@W111> {text}"
    body["event_id"] = event_id
    return body


@pytest.mark.slow
async def test_sigterm_stops_intake_finishes_work_in_flight_and_exits_0(
    tmp_path: Path, database_url: str
) -> None:
    gate = _ModelGate()
    async with FakeSlack() as slack, FakeOpenAI() as model, aiohttp.ClientSession() as http:
        slack.add_user("W222", "Ada Lovelace")
        model.script(gate)
        bot = await _BotProcess.start(tmp_path, database_url, slack, model.url)
        try:
            await bot.ready(http)
            assert await bot.post_event(http, _mention("first", "Ev1")) == (200, None)
            await asyncio.wait_for(gate.called.wait(), 20)

            bot.process.send_signal(signal.SIGTERM)
            await bot.ready(http, "draining")  # from the signal on, before intake stops
            await bot.logged("intake stopped")
            status, retry_after = await bot.post_event(http, _mention("second", "Ev2"))
            forged, _ = await bot.post_event(http, _mention("third", "Ev3"), secret="wrong")
            async with http.get(f"{bot.base}/healthz") as health:
                alive = health.status
            gate.release.set()
            code = await bot.exit_code(within=20)
        finally:
            gate.release.set()
            if bot.process.returncode is None:
                bot.process.kill()
    log = "".join(bot.log)
    assert code == 0, log[-3000:]
    assert (status, forged, alive) == (503, 401, 200)
    assert retry_after is not None
    assert retry_after.isdigit()
    assert [p["text"] for p in slack.posted("C111")] == ["the answer"], log[-4000:]
    assert len(model.requests) == 1  # the 503'd event never reached the model
    assert "Traceback" not in log


@pytest.mark.slow
async def test_a_second_signal_exits_at_once_and_the_next_start_answers_what_was_accepted(
    tmp_path: Path, database_url: str
) -> None:
    gate = _ModelGate()
    async with FakeSlack() as slack, FakeOpenAI() as model, aiohttp.ClientSession() as http:
        slack.add_user("W222", "Ada Lovelace")
        model.script(gate)
        bot = await _BotProcess.start(tmp_path, database_url, slack, model.url)
        try:
            await bot.ready(http)
            assert await bot.post_event(http, _mention("first", "Ev1")) == (200, None)
            await asyncio.wait_for(gate.called.wait(), 20)
            bot.process.send_signal(signal.SIGTERM)
            await bot.ready(http, "draining")  # waiting on the model, up to 30 s of grace
            began = time.monotonic()
            bot.process.send_signal(signal.SIGINT)
            code = await bot.exit_code(within=10)
            took = time.monotonic() - began
        finally:
            if bot.process.returncode is None:
                bot.process.kill()
        assert code == 128 + signal.SIGINT, "".join(bot.log)[-3000:]
        assert took < 5
        assert slack.posted("C111") == []

        again = await _BotProcess.start(tmp_path, database_url, slack, model.url)
        try:
            await again.ready(http)
            await asyncio.wait_for(slack.wait_for(lambda: bool(slack.posted("C111"))), 20)
            again.process.send_signal(signal.SIGTERM)
            assert await again.exit_code(within=20) == 0
        finally:
            if again.process.returncode is None:
                again.process.kill()
    # answered once, by the next start (the stalled first answer never came)
    assert [p["text"] for p in slack.posted("C111")] == ["echo: first"]


async def test_calls_made_before_a_stop_cut_the_message_short_are_still_recorded(
    database_url: str,
) -> None:
    plugin = Plugin("p")
    called = asyncio.Event()

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        await ctx.llm.complete(ChatRequest([{"role": "user", "content": message.text}]))
        called.set()
        await asyncio.sleep(30)
        return "late"

    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model=StandInModel(),
        config={"bot": {"shutdown_grace": 0.1}},
        clock=SystemClock(),
    ).bot
    await bot.start()
    await adapter.receive("hi")
    await called.wait()
    await bot.stop()
    reopened = run_bot(
        database_url=database_url,
        channels=[InMemoryChannel()],
        plugins=[],
        model=StandInModel(),
        clock=SystemClock(),
    ).bot
    await reopened.database.upgrade()
    try:
        [usage] = await reopened.store.usage.report()
    finally:
        await reopened.database.close()
    assert usage.calls == 1


async def test_a_stop_releases_waiters_of_messages_never_started(database_url: str) -> None:
    plugin = Plugin("p")
    release = asyncio.Event()

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        await release.wait()
        return "x"

    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"shutdown_grace": 0.1}},
        clock=SystemClock(),
    ).bot
    await bot.start()
    await adapter.receive("one")
    queued = await adapter.receive("two")  # behind "one" in the same conversation
    waiter = asyncio.create_task(bot.inbox.wait_done(queued))
    await asyncio.sleep(0.05)
    await bot.stop()
    await asyncio.wait_for(waiter, 5)  # does not hang
