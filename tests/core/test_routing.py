"""Routing through a real Bot: middlewares, commands, patterns and the catch-all, in order."""

from __future__ import annotations

import pytest

from botkit import (
    Context,
    Message,
    Plugin,
    PluginError,
    SkipHandler,
)
from botkit.testing import InMemoryChannel, run_bot


async def test_commands_patterns_and_catch_all_are_tried_in_that_order(database_url: str) -> None:
    plugin = Plugin("probe")

    @plugin.on_command("echo", description="repeat")
    async def echo(message: Message, ctx: Context) -> str:
        return f"echo:{ctx.args}"

    @plugin.on_message(r"\border (\d+)")
    async def order(message: Message, ctx: Context) -> str:
        assert ctx.match is not None
        return f"order #{ctx.match.group(1)}"

    @plugin.on_message(lambda m: "skip" in m.text)
    async def skipper(message: Message, ctx: Context) -> str:
        raise SkipHandler

    @plugin.on_message()
    async def fallback(message: Message, ctx: Context) -> str:
        return "fallback"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot:
        assert await adapter.exchange("/echo  a b ") == ["echo:a b"]
        assert await adapter.exchange("/ECHO@testbot x") == ["echo:x"]
        assert await adapter.exchange("where is order 42?") == ["order #42"]
        assert await adapter.exchange("please skip me") == ["fallback"]
        assert await adapter.exchange("/nope") == [
            "Unknown command /nope. Send /help to see what I can do."
        ]


async def test_middleware_can_answer_or_drop_before_handlers(database_url: str) -> None:
    plugin = Plugin("guard")
    handled: list[str] = []

    @plugin.middleware
    async def guard(message, ctx, call_next):  # type: ignore[no-untyped-def]
        if message.sender.id == "blocked":
            return None
        if "secret" in message.text:
            return "I can't talk about that."
        return await call_next()

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        handled.append(message.text)
        return "ok"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        assert await adapter.exchange("tell me the secret") == ["I can't talk about that."]
        assert await adapter.exchange("hi", user="blocked") == []
        assert await adapter.exchange("hi") == ["ok"]
        rows = await bot.store.history.messages(list(range(1, 10)))
    assert handled == ["hi"]
    assert [r.status for r in rows if r.direction == "in"] == ["done", "skipped", "done"]


async def test_two_plugins_claiming_one_command_fail_at_start(database_url: str) -> None:
    a, b = Plugin("a"), Plugin("b")

    async def handler(message: Message, ctx: Context) -> str:
        return "x"

    a.on_command("same")(handler)
    b.on_command("same")(handler)
    with pytest.raises(PluginError, match="claimed by both 'a' and 'b'"):
        run_bot(
            database_url=database_url, channels=[InMemoryChannel()], plugins=[a, b], model="config"
        )
