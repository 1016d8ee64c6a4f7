"""The plugin test kit: FakeModel, InMemoryChannel, run_bot and bot_fixture."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from botkit import (
    Capabilities,
    ChatRequest,
    ConfigError,
    Context,
    ConversationRef,
    InvalidResponseError,
    JsonSchema,
    Message,
    Plugin,
    RateLimitError,
    Reply,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit.clock import SystemClock
from botkit.llm import StandInModel
from botkit.llm.standin import STAND_IN_PREFIX
from botkit.testing import FakeModel, InMemoryChannel, MemoryState, TestBot, bot_fixture, run_bot
from botkit_chat import plugin as chat
from tests.plugins.conftest import StartBot

echo = Plugin("echo")


@echo.on_command("echo")
async def say_back(message: Message, ctx: Context) -> str:
    return ctx.args or "nothing"


testbot = bot_fixture(plugins=[echo, chat], config={"bot": {"stream": False}})


async def test_the_fixture_runs_a_bot_that_answers_commands_and_chat(testbot: TestBot) -> None:
    assert await testbot.ask("/echo hello") == "hello"
    testbot.model.reply("Hi there!")
    assert await testbot.ask("hi") == "Hi there!"
    assert testbot.model.requests[-1].messages[-1] == {"role": "user", "content": "hi"}


async def test_fake_model_takes_replies_per_purpose_before_general_ones() -> None:
    model = FakeModel().reply("general").reply("for summaries", purpose="summary")
    ask = ChatRequest([{"role": "user", "content": "x"}], purpose="summary")
    assert (await model.complete(ask)).content == "for summaries"
    assert (await model.complete(ask)).content == "general"
    assert (await model.complete(ask)).content == "echo: x"
    assert len(model.requests_for("summary")) == 3


async def test_fake_model_checks_json_like_the_real_client() -> None:
    model = FakeModel().reply("not json at all")
    schema = JsonSchema(
        "s",
        {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
            "additionalProperties": False,
        },
    )
    request = ChatRequest([{"role": "user", "content": "x"}], response_format=schema)
    with pytest.raises(InvalidResponseError, match="not valid JSON"):
        await model.complete(request)
    model.reply_json({"n": "three"})
    with pytest.raises(InvalidResponseError, match="does not match schema"):
        await model.complete(request)
    # unscripted: the simplest valid document
    assert (await model.complete(request)).parsed == {"n": 0}
    # JSON mode without the word JSON is refused before it reaches the model
    with pytest.raises(RequestRejectedError, match="JSON"):
        await model.complete(
            ChatRequest([{"role": "user", "content": "x"}], response_format="json_object")
        )
    assert len(model.requests) == 3


async def test_fake_model_streams_and_calls_tools_and_fails_on_demand() -> None:
    model = (
        FakeModel().reply("two words").call_tool("f", {"a": 1}).fail(RateLimitError("llm", "slow"))
    )
    request = ChatRequest([{"role": "user", "content": "x"}])
    pieces = [event async for event in model.stream(request)]
    assert [getattr(p, "text", None) for p in pieces[:-1]] == ["two ", "words"]
    call = (await model.complete(request)).tool_calls[0]
    assert (call.name, call.parsed_arguments()) == ("f", {"a": 1})
    with pytest.raises(RateLimitError):
        await model.complete(request)


async def test_usage_of_the_fake_model_is_recorded_with_its_price(start_bot: StartBot) -> None:
    model = FakeModel(input_price_per_1k="1", output_price_per_1k="2").reply(
        "ok", usage=(1000, 500)
    )
    async with start_bot(plugins=[chat], model=model, config={"bot": {"stream": False}}) as bot:
        assert await bot.ask("hi", user="ann") == "ok"
        [row] = await bot.store.usage.report()
    assert (row.user, row.prompt_tokens, row.completion_tokens) == ("ann", 1000, 500)
    assert Decimal(row.cost_nanos) / 10**9 == Decimal("2")


async def test_send_returns_only_replies_in_that_conversation(start_bot: StartBot) -> None:
    notify = Plugin("notify")

    @notify.on_message()
    async def tell_ops(message: Message, ctx: Context) -> str:
        from botkit import ConversationRef

        await ctx.send(ConversationRef("ops", "room"), f"{message.sender.id} wrote")
        return "noted"

    async with start_bot(plugins=[notify], channels=["test", "ops"]) as bot:
        assert await bot.send("hello", user="bob") == ["noted"]
        assert [s.text for s in bot.channels["ops"].sent] == ["bob wrote"]
        assert (await bot.stored()).status == "done"


async def test_settings_are_parsed_and_checked_like_the_config_file() -> None:
    from botkit_spam import SpamSettings
    from botkit_spam import plugin as spam

    with pytest.raises(ConfigError, match=r"plugins\.spam\.max_links: must be an integer"):
        async with run_bot(plugins=[spam], settings={"spam": {"max_links": "many"}}):
            pass
    async with run_bot(plugins=[spam], settings={"spam": SpamSettings(max_links=9)}) as bot:
        assert bot.bot.runtime.plugin_settings["spam"].max_links == 9
    with pytest.raises(ValueError, match="not among the plugins"):
        async with run_bot(plugins=[chat], settings={"spam": {}}):
            pass


async def test_in_memory_channel_can_show_streaming_edits(start_bot: StartBot) -> None:
    from botkit import Capabilities

    channel = InMemoryChannel("live", capabilities=Capabilities(edits=True, edit_interval=0))
    model = FakeModel().reply("a streamed answer")
    async with start_bot(plugins=[chat], model=model, channels=[channel]) as bot:
        assert await bot.send("go") == ["a streamed answer"]
    assert channel.sent[0].edits[-1] == "a streamed answer"


# -- the channel fails on demand -----------------------------------------------------------


async def test_scripted_failures_are_raised_once_each_in_order_and_every_attempt_counted() -> None:
    channel = InMemoryChannel(capabilities=Capabilities(edits=True))
    down = ServiceUnavailableError("test", "down")
    refused = RequestRejectedError("test", "message cannot be edited")
    assert channel.fail_sends(down).fail_edits(refused) is channel
    ref = ConversationRef("test", "chat")
    with pytest.raises(ServiceUnavailableError):
        await channel.send(ref, Reply("first"), delivery_id="d1")
    assert channel.sent == []  # a failed send sends nothing
    sent = await channel.send(ref, Reply("first"), delivery_id="d1")
    with pytest.raises(RequestRejectedError):
        await channel.edit(sent, "second")
    assert channel.sent[0].text == "first"  # a failed edit changes nothing
    await channel.edit(sent, "third")
    [record] = channel.sent
    assert (record.text, record.edits, record.delivery_id) == ("third", ["third"], "d1")
    assert (channel.send_attempts, channel.edit_attempts) == (2, 2)
    assert len(channel.change_times) == 4
    assert channel.change_times == sorted(channel.change_times)


async def test_sends_scripted_to_fail_are_retried_by_the_outbox_until_delivered(
    start_bot: StartBot,
) -> None:
    channel = InMemoryChannel().fail_sends(
        ServiceUnavailableError("test", "down"),
        RateLimitError("test", "slow down", retry_after=0.01),
    )
    outbox = {"outbox": {"backoff_base": 0.01}}
    async with start_bot(plugins=[echo], channels=[channel], config=outbox) as bot:
        assert await bot.ask("/echo hi") == "hi"
        [reply] = await bot.store.history.messages([bot.last_message_id + 1])
    assert (channel.send_attempts, reply.status, reply.attempts) == (3, "delivered", 3)


async def test_a_send_scripted_to_be_refused_is_not_retried(start_bot: StartBot) -> None:
    channel = InMemoryChannel().fail_sends(RequestRejectedError("test", "chat not found"))
    async with start_bot(plugins=[echo], channels=[channel]) as bot:
        assert await bot.send("/echo lost") == []
        assert await bot.ask("/echo found") == "found"
    assert channel.send_attempts == 2


# -- run_bot on a database of the test's choosing, by hand, from the config ----------------------


async def test_run_bot_keeps_its_data_in_the_database_it_is_given(database_url: str) -> None:
    async with run_bot(database_url=database_url, plugins=[echo]) as bot:
        assert await bot.ask("/echo kept") == "kept"
        asked = bot.last_message_id
    async with run_bot(database_url=database_url, plugins=[echo]) as again:
        assert (await again.stored(asked)).text == "/echo kept"
        assert again.bot.config.database.url == database_url


async def test_a_bot_started_and_stopped_by_hand_deletes_its_temporary_database() -> None:
    bot = run_bot(plugins=[echo])
    path = Path(bot.bot.config.database.url.removeprefix("sqlite:///"))
    await bot.start()
    assert await bot.ask("/echo hi") == "hi"
    assert await asyncio.to_thread(path.exists)
    await bot.stop()
    assert not await asyncio.to_thread(path.parent.exists)


async def test_run_bot_can_take_the_model_and_plugins_from_the_config(
    database_url: str,
) -> None:
    async with run_bot(database_url=database_url, model="config", clock=SystemClock()) as bot:
        assert isinstance(bot.chat_model, StandInModel)
        assert [p.name for p in bot.bot.plugins] == ["chat"]
        assert (await bot.ask("hello")).startswith(STAND_IN_PREFIX)
    with pytest.raises(ValueError, match="settings are for the plugins given"):
        run_bot(database_url=database_url, settings={"chat": {}})


# -- bot_fixture is named like a pytest fixture --------------------------------------------------

echo_bot = bot_fixture(plugins=[echo])
renamed = bot_fixture(plugins=[echo], name="renamed_bot")


async def test_a_bot_fixture_is_named_by_the_variable_holding_it_unless_given_a_name(
    echo_bot: TestBot, renamed_bot: TestBot, request: pytest.FixtureRequest
) -> None:
    assert echo_bot is not renamed_bot
    assert await echo_bot.ask("/echo one") == "one"
    assert await renamed_bot.ask("/echo two") == "two"
    with pytest.raises(pytest.FixtureLookupError):
        request.getfixturevalue("renamed")


# -- MemoryState: key-value state without a database ----------------------------------------


async def test_memory_state_stores_what_the_store_would_and_keeps_expiry_like_it() -> None:
    state = MemoryState()
    await state.set("seen", ("a", 1), ttl=60)
    assert await state.get("seen") == ["a", 1]  # through JSON, as the store keeps it
    with pytest.raises(TypeError):
        await state.set("bad", object())  # the store would refuse it too
    assert await state.update("seen", lambda v: [*v, 2]) == ["a", 1, 2]
    assert state.ttls["seen"] == 60  # an update without ttl keeps the key's own
    assert await state.update("count", lambda v: v + 1, default=0, ttl=5) == 1
    assert state.ttls["count"] == 5
    await state.delete("seen")
    assert await state.get("seen", "gone") == "gone"
    assert "seen" not in state.ttls
