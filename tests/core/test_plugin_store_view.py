"""What a plugin sees of the store: a read-only view and its own state, never the store
itself (claiming, finishing and sending stay the core's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botkit import Context, Message, Plugin, PluginRuntime, StoreView
from botkit.store import Store
from botkit.store._section import Section
from botkit.testing import FakeModel, run_bot

_CORE_ONLY = (
    "accept",
    "claim",
    "release",
    "release_all",
    "renew",
    "finish",
    "finish_inbound",
    "set_status",
    "add",
    "add_outbound",
    "update_outbound",
    "inbound",
    "outbound",
    "claims",
    "db",
)


def _reachable(obj: object) -> dict[str, Any]:
    """Every public attribute a plugin can read without a leading underscore (properties
    that need a message being answered are skipped when they raise)."""
    found = {}
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            found[name] = getattr(obj, name)
        except Exception:  # a property that needs more than this context has
            continue
    return found


async def test_a_plugins_context_reads_through_a_view_that_cannot_claim_or_finish() -> None:
    plugin = Plugin("p")
    seen: list[Context] = []

    @plugin.on_message()
    async def look(message: Message, ctx: Context) -> str:
        seen.append(ctx)
        assert message.id is not None
        [row] = await ctx.store.messages([message.id])
        turns = await ctx.store.history(ctx.conversation_id, limit=10)
        since = datetime.now(UTC) - timedelta(hours=1)
        chat = await ctx.store.chat_messages_since(
            message.channel, message.conversation.chat_id, since=since, limit=10
        )
        tokens, cost = await ctx.store.spend(since=since)
        same = await ctx.store.conversation_id(message.conversation)
        await ctx.state.set("seen", row.text)
        return f"{row.text} {len(turns)} {len(chat)} {tokens} {cost} {same == ctx.conversation_id}"

    async with run_bot(plugins=[plugin], model=FakeModel()) as bot:
        assert await bot.ask("hello") == "hello 1 1 0 0 True"
        assert await bot.store.state("plugin:p").get("seen") == "hello"
        runtime = PluginRuntime(bot.bot.runtime, "p")
        for ctx in (seen[0], runtime):
            assert isinstance(ctx.store, StoreView)
            for owner in (ctx, ctx.store):
                for name, value in _reachable(owner).items():
                    assert not isinstance(value, Store | Section), name
                for name in _CORE_ONLY:
                    assert not hasattr(owner, name), name
