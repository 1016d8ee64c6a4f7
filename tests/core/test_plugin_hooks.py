"""Hooks plugins build on: model-call guards (budgets), annotations and requeueing."""

from __future__ import annotations

import pytest

from botkit import Context, Message, Plugin, PluginRuntime, QuotaExceededError
from botkit.plugin import ModelCall
from botkit.testing import FakeModel, InMemoryChannel, run_bot
from tests.fakes.openai_server import FakeOpenAI


async def test_a_guard_refuses_a_model_call_before_anything_is_sent(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    budget = Plugin("budget")
    seen: list[ModelCall] = []

    @budget.before_model_call
    async def limit(call: ModelCall, runtime: PluginRuntime) -> None:
        seen.append(call)
        if call.message is not None and call.message.sender.id == "broke":
            raise QuotaExceededError("budget", "your daily budget of $0.10 is spent")

    from botkit_chat import plugin as chat

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[budget, chat],
        model="config",
        config={"llm": {"base_url": fake_openai.url}, "bot": {"stream": False}},
    ).bot as bot:
        assert await adapter.exchange("hi", user="broke") == [
            "Sorry, I can't answer right now: your daily budget of $0.10 is spent"
        ]
        assert fake_openai.requests == []
        assert await adapter.exchange("hi", user="rich") == ["echo: hi"]
        assert await bot.store.usage.report() != []
    assert seen[0].prompt_tokens > 0
    assert seen[0].model == "gpt-4o-mini"


async def test_annotations_are_stored_and_shared_with_later_handlers(database_url: str) -> None:
    plugin = Plugin("tagger")

    @plugin.middleware
    async def tag(message, ctx, call_next):  # type: ignore[no-untyped-def]
        await ctx.annotate(sentiment="positive", score=0.9)
        return await call_next()

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return f"tagged {ctx.annotations['sentiment']}"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        assert await adapter.exchange("great!") == ["tagged positive"]
        [row] = await bot.store.history.messages([1])
    assert row.meta == {"sentiment": "positive", "score": 0.9}


async def test_a_held_message_can_be_released_and_is_then_answered(database_url: str) -> None:
    plugin = Plugin("hold")

    @plugin.middleware
    async def hold(message, ctx, call_next):  # type: ignore[no-untyped-def]
        if "buy" in message.text and not ctx.annotations.get("released"):
            await ctx.annotate(held="looks like spam")
            return None
        return await call_next()

    @plugin.on_command("release")
    async def release(message: Message, ctx: Context) -> str:
        await ctx.requeue(int(ctx.args), released=True)
        return "released"

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return f"answered {message.text}"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        held = await adapter.receive("buy now")
        await bot.inbox.wait_done(held)
        assert adapter.sent == []
        [row] = await bot.store.history.messages([held])
        assert row.status == "skipped"
        assert row.meta["held"] == "looks like spam"
        # an operator releases it; the middleware lets it through this time
        assert await adapter.exchange(f"/release {held}", user="operator") == ["released"]
        await bot.dispatcher.idle()
        [row] = await bot.store.history.messages([held])
    assert [s.text for s in adapter.sent] == ["released", "answered buy now"]
    assert row.status == "done"
    assert row.meta["released"] is True


async def test_a_middleware_sees_its_own_plugins_settings_and_state(database_url: str) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class GateSettings:
        word: str = "open"

    gate = Plugin("gate", settings_class=GateSettings)

    @gate.middleware
    async def check(message, ctx, call_next):  # type: ignore[no-untyped-def]
        await ctx.state.set("seen", message.text)
        if ctx.settings.word not in message.text:
            return "closed"
        return await call_next()

    @gate.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return f"last seen: {await ctx.state.get('seen')}"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[gate],
        settings={"gate": GateSettings(word="sesame")},
        model="config",
    ).bot:
        assert await adapter.exchange("hello") == ["closed"]
        assert await adapter.exchange("sesame please") == ["last seen: sesame please"]


def test_settings_as_gives_the_parsed_settings_or_the_class_defaults() -> None:
    from dataclasses import dataclass
    from types import SimpleNamespace
    from typing import Any, cast

    from botkit.context import PluginRuntime

    @dataclass(frozen=True)
    class Knobs:
        level: int = 1

    configured = cast(Any, SimpleNamespace(plugin_settings={"knobs": Knobs(level=5)}))
    assert PluginRuntime(configured, "knobs").settings_as(Knobs) == Knobs(level=5)
    bare = cast(Any, SimpleNamespace(plugin_settings={}))
    assert PluginRuntime(bare, "knobs").settings_as(Knobs) == Knobs()


async def test_prompt_context_adds_a_plugins_text_to_each_answer_within_its_room(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from botkit_chat import plugin as chat

    notes = Plugin("notes")
    broken = Plugin("broken")
    greedy = Plugin("greedy")
    rooms: list[tuple[str, int, str | None]] = []

    @notes.prompt_context
    async def add_notes(message: Message, ctx: Context, room: int) -> str | None:
        rooms.append((message.text, room, ctx.plugin))
        await ctx.state.set("seen", message.text)  # its own state, not the chat plugin's
        return "Notes: the office closes at six."

    @broken.prompt_context
    async def fail(message: Message, ctx: Context, room: int) -> str | None:
        raise RuntimeError("the notes service is down")

    @greedy.prompt_context
    async def too_long(message: Message, ctx: Context, room: int) -> str | None:
        return "word " * (room + 10)

    model = FakeModel(context_window=4000, max_output_tokens=500)
    async with run_bot(
        plugins=[broken, notes, greedy, chat], model=model, database_url=database_url
    ) as bot:
        assert await bot.ask("when do you close?") == "echo: when do you close?"
        seen = await bot.store.state("plugin:notes").get("seen")
    [request] = model.requests_for("chat")
    assert request.messages[0]["role"] == "system"
    assert request.messages[1] == {"role": "system", "content": "Notes: the office closes at six."}
    assert request.messages[2] == {"role": "user", "content": "when do you close?"}
    [(text, room, plugin)] = rooms
    assert (text, plugin) == ("when do you close?", "notes")
    assert 0 < room <= (4000 - 500) // 2  # at most half the free window
    assert seen == "when do you close?"
    assert "prompt context of plugin 'broken' failed" in caplog.text
    assert "prompt context of plugin 'greedy' left out" in caplog.text
