"""A conversation through a real Bot and the chat plugin: commands, reset, context kept."""

from __future__ import annotations

from botkit import (
    Context,
    ConversationRef,
    Message,
    Plugin,
    Sender,
)
from botkit.testing import InMemoryChannel, run_bot


async def test_chat_plugin_commands_and_reset(database_url: str) -> None:
    adapter = InMemoryChannel()
    async with run_bot(database_url=database_url, channels=[adapter], model="config").bot as bot:
        assert "stand-in" in (await adapter.exchange("remember me"))[0]
        [help_text] = await adapter.exchange("/help")
        assert "/reset" in help_text
        assert "/start" in help_text
        assert await adapter.exchange("/reset") == ["Started a new conversation."]
        conv = await bot.store.history.conversation_id(adapter.sent[0].conversation)
        history = await bot.store.history.turns(conv, before_id=None, limit=50)
    assert [h.text for h in history] == ["Started a new conversation."]
    assert [c.name for c in adapter.commands] == ["start", "help", "reset"]


async def test_an_empty_message_gets_a_clear_answer_not_a_model_call(database_url: str) -> None:
    adapter = InMemoryChannel()
    async with run_bot(database_url=database_url, channels=[adapter], model="config").bot as bot:
        assert await adapter.exchange("") == ["I can only read text here."]
        assert await bot.store.usage.report() == []


async def test_unaddressed_messages_are_kept_as_context_and_never_answered(
    database_url: str,
) -> None:
    from botkit import Message as Msg

    plugin = Plugin("p")
    seen: list[list[str]] = []

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        seen.append([h.text for h in await ctx.history()])
        return "ok"

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        chatter = await adapter.deliver(
            Msg(
                ConversationRef("test", "group"),
                Sender("u2", "Bob"),
                "lunch at noon?",
                "g1",
                metadata={"addressed": False},
            )
        )
        await bot.inbox.wait_done(chatter)
        assert await adapter.exchange("what did Bob say?", chat="group") == ["ok"]
        [row] = await bot.store.history.messages([chatter])
    assert row.status == "context"
    assert seen == [["lunch at noon?", "what did Bob say?"]]
