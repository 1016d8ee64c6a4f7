"""The Context a handler gets, through a real Bot: replies before returning, plugin state."""

from __future__ import annotations

from botkit import (
    Context,
    Message,
    Plugin,
    Reply,
)
from botkit.testing import InMemoryChannel, run_bot


async def test_ctx_reply_sends_before_the_handler_returns_and_in_order(database_url: str) -> None:
    plugin = Plugin("multi")

    @plugin.on_message()
    async def several(message: Message, ctx: Context) -> str:
        await ctx.reply("working on it")
        await ctx.reply(Reply("*step two*", markup="markdown"))
        return "done"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot:
        assert await adapter.exchange("go") == ["working on it", "*step two*", "done"]


async def test_plugin_state_persists_per_plugin(database_url: str) -> None:
    plugin = Plugin("counter")

    @plugin.on_message()
    async def count(message: Message, ctx: Context) -> str:
        n = await ctx.state.get("n", 0) + 1
        await ctx.state.set("n", n)
        return str(n)

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot:
        assert await adapter.exchange("a") == ["1"]
    adapter2 = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter2], plugins=[plugin], model="config"
    ).bot:
        assert await adapter2.exchange("b") == ["2"]
