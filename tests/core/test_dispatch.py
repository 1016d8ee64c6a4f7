"""The dispatcher through a real Bot and store: ordering, concurrency, bursts, failures."""

from __future__ import annotations

import asyncio
import logging

import pytest

from botkit import (
    Context,
    ConversationRef,
    Message,
    Plugin,
    QuotaExceededError,
    Sender,
    StoreError,
)
from botkit.bot import Bot
from botkit.dispatch import APOLOGY, CONFIG_APOLOGY
from botkit.llm import ModelTable, OpenAIChatClient
from botkit.secrets import Secret
from botkit.testing import InMemoryChannel, run_bot
from tests.fakes.openai_server import FakeOpenAI, unauthorized


class Gauge:
    """Counts handlers running at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


async def test_messages_of_one_conversation_run_one_at_a_time_in_order(database_url: str) -> None:
    plugin = Plugin("probe")
    seen: list[str] = []
    gauge = Gauge()

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        with gauge:
            await asyncio.sleep(0.01)
            seen.append(message.text)
        return f"re {message.text}"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        ids = [await adapter.receive(f"m{i}") for i in range(8)]
        for message_id in ids:
            await bot.inbox.wait_done(message_id)
    assert seen == [f"m{i}" for i in range(8)]
    assert [s.text for s in adapter.sent] == [f"re m{i}" for i in range(8)]
    assert gauge.peak == 1


async def test_conversations_run_concurrently_up_to_the_in_flight_cap(database_url: str) -> None:
    plugin = Plugin("probe")
    gauge = Gauge()
    release = asyncio.Event()

    @plugin.on_message()
    async def wait(message: Message, ctx: Context) -> str:
        with gauge:
            await release.wait()
        return "ok"

    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"max_in_flight": 3}},
    ).bot
    async with bot:
        ids = [await adapter.receive("hi", chat=f"chat{i}") for i in range(6)]
        for _ in range(200):
            if gauge.peak >= 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert gauge.now == 3  # three conversations at once, the other three wait
        release.set()
        for message_id in ids:
            await bot.inbox.wait_done(message_id)
    assert gauge.peak == 3
    assert len(adapter.sent) == 6


async def test_coalesce_answers_a_burst_once(database_url: str) -> None:
    plugin = Plugin("probe")
    calls: list[str] = []
    first_started = asyncio.Event()
    release = asyncio.Event()

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        calls.append(message.text)
        if len(calls) == 1:
            first_started.set()
            await release.wait()
        return f"answer to {message.text!r}"

    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"burst": "coalesce"}},
    ).bot
    async with bot:
        await adapter.receive("one")
        await first_started.wait()
        await adapter.receive("two")
        last = await adapter.receive("three")
        release.set()
        await bot.inbox.wait_done(last)
    assert calls == ["one", "two\nthree"]
    assert len(adapter.sent) == 2


async def test_queue_policy_answers_each_message_of_a_burst(database_url: str) -> None:
    plugin = Plugin("probe")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return message.text.upper()

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        ids = [await adapter.receive(t) for t in ("a", "b", "c")]
        for message_id in ids:
            await bot.inbox.wait_done(message_id)
    assert [s.text for s in adapter.sent] == ["A", "B", "C"]


async def test_a_crashing_handler_gets_an_apology_and_is_recorded_failed(
    database_url: str,
) -> None:
    plugin = Plugin("buggy")

    @plugin.on_message()
    async def broken(message: Message, ctx: Context) -> str:
        raise ValueError("boom")

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        message_id = await adapter.receive("hi")
        await bot.inbox.wait_done(message_id)
        [row] = await bot.store.history.messages([message_id])
    assert [s.text for s in adapter.sent] == [APOLOGY]
    assert row.status == "failed"
    assert row.error == "ValueError: boom"


def _failure_count(bot: Bot, stage: str) -> float:
    value = bot.metrics.registry.get_sample_value("botkit_failures_total", {"stage": stage})
    return value or 0.0


async def test_a_model_that_refuses_the_bots_key_is_one_error_line_and_no_try_again(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = InMemoryChannel()
    async with FakeOpenAI() as fake:
        fake.default = unauthorized()
        model = OpenAIChatClient(fake.url, Secret("sk-wrong"), "gpt-4o-mini", models=ModelTable())
        async with (
            model,
            run_bot(database_url=database_url, channels=[adapter], model=model).bot as bot,
        ):
            with caplog.at_level(logging.WARNING):
                assert await adapter.exchange("hello") == [CONFIG_APOLOGY]
            assert _failure_count(bot, "model_config") == 1
    assert "try again" not in CONFIG_APOLOGY
    [line] = [r for r in caplog.records if "not answered" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert "check the API key" in line.getMessage()
    assert not line.exc_info  # one line: no traceback for an expected failure
    assert "\n" not in line.getMessage()


async def test_a_budget_refusal_is_one_warning_line(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = Plugin("refuser")

    @plugin.on_message()
    async def refuse(message: Message, ctx: Context) -> str:
        raise QuotaExceededError("budget", "your daily limit of 10 tokens is used up")

    adapter = InMemoryChannel()
    with caplog.at_level(logging.WARNING):
        async with run_bot(
            database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
        ).bot:
            assert await adapter.exchange("hi") == [
                "Sorry, I can't answer right now: your daily limit of 10 tokens is used up"
            ]
    [line] = [r for r in caplog.records if "not answered" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert not line.exc_info
    bugs = [r for r in caplog.records if r.exc_info]
    assert bugs == []


async def test_a_bug_in_a_handler_keeps_its_traceback(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = Plugin("buggy")

    @plugin.on_message()
    async def broken(message: Message, ctx: Context) -> str:
        raise ValueError("boom")

    adapter = InMemoryChannel()
    with caplog.at_level(logging.WARNING):
        async with run_bot(
            database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
        ).bot:
            assert await adapter.exchange("hi") == [APOLOGY]
    assert [r for r in caplog.records if r.exc_info is not None and "boom" in str(r.exc_info[1])]


async def test_a_store_failure_in_a_worker_hands_the_message_back_to_be_answered(
    database_url: str,
) -> None:
    plugin = Plugin("p")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return "re " + message.text

    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"claim_lease": 1.0}},
    ).bot
    async with bot:
        real = bot.store.inbound.finish
        failures = [StoreError("could not finish message: connection reset")]

        async def flaky(*args: object, **kwargs: object) -> object:
            if failures:
                raise failures.pop()
            return await real(*args, **kwargs)  # type: ignore[arg-type]

        bot.store.inbound.finish = flaky  # type: ignore[method-assign,assignment]
        await adapter.receive("hello")
        for _ in range(100):  # the periodic sweep takes it up again
            if adapter.sent:
                break
            await asyncio.sleep(0.05)
    assert [s.text for s in adapter.sent] == ["re hello"]


async def test_coalesced_chatter_is_kept_as_context_and_the_question_answered(
    database_url: str,
) -> None:
    plugin = Plugin("p")
    gate = asyncio.Event()

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        if message.text == "first":
            await gate.wait()
        return "re " + message.text

    adapter = InMemoryChannel()
    group = ConversationRef("test", "g")
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"burst": "coalesce"}},
    ).bot as bot:

        async def say(text: str, external_id: str, addressed: bool) -> int:
            message = Message(
                group, Sender("u"), text, external_id, metadata={"addressed": addressed}
            )
            return await adapter.deliver(message)

        await say("first", "e1", True)
        await asyncio.sleep(0.05)
        question = await say("@bot what is 2+2?", "e2", True)
        chatter = await say("lol", "e3", False)
        gate.set()
        await bot.inbox.wait_done(chatter)
        await bot.dispatcher.idle()
        rows = {r.id: r.status for r in await bot.store.history.messages([question, chatter])}
    assert [s.text for s in adapter.sent] == ["re first", "re @bot what is 2+2?"]
    assert rows == {question: "done", chatter: "context"}
