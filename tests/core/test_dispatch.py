"""The dispatcher, pipeline and outbox through a real Bot and store."""

from __future__ import annotations

import asyncio
import logging

import pytest

from botkit import (
    Capabilities,
    Context,
    Message,
    Plugin,
    PluginError,
    QuotaExceededError,
    RateLimitError,
    Reply,
    RequestRejectedError,
    ServiceUnavailableError,
    SkipHandler,
)
from botkit.bot import Bot
from botkit.dispatch import APOLOGY, CONFIG_APOLOGY
from botkit.llm import ModelTable, OpenAIChatClient
from botkit.secrets import Secret
from tests.fakes.bots import make_bot
from tests.fakes.openai_server import FakeOpenAI, unauthorized
from tests.fakes.recording_adapter import RecordingAdapter


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

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        ids = [await adapter.say(f"m{i}") for i in range(8)]
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

    adapter = RecordingAdapter()
    bot = make_bot(database_url, {"test": adapter}, plugins=[plugin], bot={"max_in_flight": 3})
    async with bot:
        ids = [await adapter.say("hi", chat=f"chat{i}") for i in range(6)]
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

    adapter = RecordingAdapter()
    bot = make_bot(database_url, {"test": adapter}, plugins=[plugin], bot={"burst": "coalesce"})
    async with bot:
        await adapter.say("one")
        await first_started.wait()
        await adapter.say("two")
        last = await adapter.say("three")
        release.set()
        await bot.inbox.wait_done(last)
    assert calls == ["one", "two\nthree"]
    assert len(adapter.sent) == 2


async def test_queue_policy_answers_each_message_of_a_burst(database_url: str) -> None:
    plugin = Plugin("probe")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return message.text.upper()

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        ids = [await adapter.say(t) for t in ("a", "b", "c")]
        for message_id in ids:
            await bot.inbox.wait_done(message_id)
    assert [s.text for s in adapter.sent] == ["A", "B", "C"]


async def test_duplicate_delivery_is_answered_once(database_url: str) -> None:
    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}) as bot:
        first = await adapter.say("hello", external_id="update-1")
        second = await adapter.say("hello", external_id="update-1")
        assert first == second
        await bot.inbox.wait_done(first)
        await bot.dispatcher.idle()
    assert len(adapter.sent) == 1
    assert "You said: hello" in adapter.sent[0].text


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

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
        assert await adapter.ask("/echo  a b ") == ["echo:a b"]
        assert await adapter.ask("/ECHO@testbot x") == ["echo:x"]
        assert await adapter.ask("where is order 42?") == ["order #42"]
        assert await adapter.ask("please skip me") == ["fallback"]
        assert await adapter.ask("/nope") == [
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

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        assert await adapter.ask("tell me the secret") == ["I can't talk about that."]
        assert await adapter.ask("hi", user="blocked") == []
        assert await adapter.ask("hi") == ["ok"]
        rows = await bot.store.history.messages(list(range(1, 10)))
    assert handled == ["hi"]
    assert [r.status for r in rows if r.direction == "in"] == ["done", "skipped", "done"]


async def test_a_crashing_handler_gets_an_apology_and_is_recorded_failed(
    database_url: str,
) -> None:
    plugin = Plugin("buggy")

    @plugin.on_message()
    async def broken(message: Message, ctx: Context) -> str:
        raise ValueError("boom")

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        message_id = await adapter.say("hi")
        await bot.inbox.wait_done(message_id)
        [row] = await bot.store.history.messages([message_id])
    assert [s.text for s in adapter.sent] == [APOLOGY]
    assert row.status == "failed"
    assert row.error == "ValueError: boom"


async def test_ctx_reply_sends_before_the_handler_returns_and_in_order(database_url: str) -> None:
    plugin = Plugin("multi")

    @plugin.on_message()
    async def several(message: Message, ctx: Context) -> str:
        await ctx.reply("working on it")
        await ctx.reply(Reply("*step two*", markup="markdown"))
        return "done"

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
        assert await adapter.ask("go") == ["working on it", "*step two*", "done"]


async def test_outbox_retries_a_failed_send_until_it_is_delivered_once(database_url: str) -> None:
    adapter = RecordingAdapter()
    adapter.fail_next = [
        ServiceUnavailableError("test", "down"),
        RateLimitError("test", "slow down", retry_after=0.01),
    ]
    bot = make_bot(database_url, {"test": adapter}, outbox={"backoff_base": 0.01})
    async with bot:
        message_id = await adapter.say("hello")
        await bot.inbox.wait_done(message_id)
        [reply] = await bot.store.history.messages([message_id + 1])
    assert adapter.send_attempts == 3
    assert len(adapter.sent) == 1
    assert reply.status == "delivered"
    assert reply.attempts == 3


async def test_a_rejected_send_is_not_retried_and_later_replies_still_go(
    database_url: str,
) -> None:
    adapter = RecordingAdapter()
    adapter.fail_next = [RequestRejectedError("test", "chat not found", code="chat_not_found")]
    async with make_bot(database_url, {"test": adapter}) as bot:
        first = await adapter.say("one")
        await bot.inbox.wait_done(first)
        second = await adapter.say("two")
        await bot.inbox.wait_done(second)
        failed = [
            r for r in await bot.store.history.messages(list(range(1, 10))) if r.direction == "out"
        ]
    assert adapter.send_attempts == 2
    assert [r.status for r in failed] == ["failed", "delivered"]
    assert "chat not found" in (failed[0].error or "")


async def test_a_long_retry_after_is_scheduled_not_slept_on(database_url: str) -> None:
    adapter = RecordingAdapter()
    adapter.fail_next = [RateLimitError("test", "flood", retry_after=3600)]
    plugin = Plugin("p")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return f"re {message.text}"

    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        first = await adapter.say("one", chat="a")
        await asyncio.wait_for(bot.inbox.wait_done(first), 5)  # the worker did not sleep
        other = await adapter.say("two", chat="b")
        await asyncio.wait_for(bot.inbox.wait_done(other), 5)
        rows = [
            r for r in await bot.store.history.messages(list(range(1, 10))) if r.direction == "out"
        ]
    waiting = next(r for r in rows if r.text == "re one")
    assert waiting.status == "pending"
    assert waiting.next_attempt_at is not None
    assert [s.text for s in adapter.sent] == ["re two"]


async def test_streaming_posts_once_then_edits_and_finishes_with_the_whole_text(
    database_url: str,
) -> None:
    plugin = Plugin("streamer")

    async def words() -> object:
        for word in ["Hello", " there", ",", " friend", "."]:
            await asyncio.sleep(0.02)
            yield word

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> None:
        await ctx.stream(words())  # type: ignore[arg-type]

    adapter = RecordingAdapter(
        capabilities=Capabilities(edits=True, max_length=4000, edit_interval=0.03, typing=True)
    )
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        message_id = await adapter.say("hi")
        await bot.inbox.wait_done(message_id)
        [reply] = [
            r for r in await bot.store.history.messages(list(range(1, 5))) if r.direction == "out"
        ]
    [sent] = adapter.sent
    assert sent.text == "Hello there, friend."
    assert 1 <= len(sent.edits) < 5  # throttled: fewer edits than fragments
    assert reply.status == "delivered"
    assert reply.text == "Hello there, friend."
    assert adapter.typing_calls >= 1


async def test_an_answer_streamed_faster_than_the_first_show_is_posted_once_unedited(
    database_url: str,
) -> None:
    plugin = Plugin("streamer")

    async def words() -> object:
        for word in ["Quick", " and", " whole", "."]:
            await asyncio.sleep(0.01)
            yield word

    async def slow_words() -> object:
        yield "Slow"
        await asyncio.sleep(0.6)  # the model pauses: what it wrote shows meanwhile
        yield " but sure."

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> None:
        await ctx.stream((slow_words if message.text == "slow" else words)())  # type: ignore[arg-type]

    adapter = RecordingAdapter(
        capabilities=Capabilities(edits=True, max_length=4000, edit_interval=1.0)
    )
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        await bot.inbox.wait_done(await adapter.say("fast"))
        [fast] = adapter.sent
        assert (fast.text, fast.edits) == ("Quick and whole.", [])
        await bot.inbox.wait_done(await adapter.say("slow"))
    [_, slow] = adapter.sent
    assert slow.edits == ["Slow but sure."]  # "Slow" was posted while the model paused


async def test_streaming_past_the_channel_limit_continues_in_new_messages(
    database_url: str,
) -> None:
    plugin = Plugin("long")
    paragraph = "word " * 30

    async def paragraphs() -> object:
        for _ in range(6):
            yield paragraph.strip() + "\n\n"

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> None:
        await ctx.stream(paragraphs())  # type: ignore[arg-type]

    adapter = RecordingAdapter(
        capabilities=Capabilities(edits=True, max_length=400, edit_interval=0)
    )
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
        await adapter.ask("go")
    assert len(adapter.sent) >= 2
    assert all(len(s.text) <= 400 for s in adapter.sent)
    assert " ".join(s.text for s in adapter.sent).split() == (paragraph * 6).split()


async def test_two_plugins_claiming_one_command_fail_at_start(database_url: str) -> None:
    a, b = Plugin("a"), Plugin("b")

    async def handler(message: Message, ctx: Context) -> str:
        return "x"

    a.on_command("same")(handler)
    b.on_command("same")(handler)
    with pytest.raises(PluginError, match="claimed by both 'a' and 'b'"):
        make_bot(database_url, {"test": RecordingAdapter()}, plugins=[a, b])


async def test_plugin_state_persists_per_plugin(database_url: str) -> None:
    plugin = Plugin("counter")

    @plugin.on_message()
    async def count(message: Message, ctx: Context) -> str:
        n = await ctx.state.get("n", 0) + 1
        await ctx.state.set("n", n)
        return str(n)

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
        assert await adapter.ask("a") == ["1"]
    adapter2 = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter2}, plugins=[plugin]):
        assert await adapter2.ask("b") == ["2"]


async def test_chat_plugin_commands_and_reset(database_url: str) -> None:
    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}) as bot:
        assert "stand-in" in (await adapter.ask("remember me"))[0]
        [help_text] = await adapter.ask("/help")
        assert "/reset" in help_text
        assert "/start" in help_text
        assert await adapter.ask("/reset") == ["Started a new conversation."]
        conv = await bot.store.history.conversation_id(adapter.sent[0].conversation)
        history = await bot.store.history.turns(conv, before_id=None, limit=50)
    assert [h.text for h in history] == ["Started a new conversation."]
    assert [c.name for c in adapter.commands] == ["start", "help", "reset"]


async def test_an_empty_message_gets_a_clear_answer_not_a_model_call(database_url: str) -> None:
    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}) as bot:
        assert await adapter.ask("") == ["I can only read text here."]
        assert await bot.store.usage.report() == []


async def test_unaddressed_messages_are_kept_as_context_and_never_answered(
    database_url: str,
) -> None:
    from botkit import ConversationRef, Sender
    from botkit import Message as Msg

    plugin = Plugin("p")
    seen: list[list[str]] = []

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        seen.append([h.text for h in await ctx.history()])
        return "ok"

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        assert adapter.inbox is not None
        chatter = await adapter.inbox.accept(
            Msg(
                ConversationRef("test", "group"),
                Sender("u2", "Bob"),
                "lunch at noon?",
                "g1",
                metadata={"addressed": False},
            )
        )
        await bot.inbox.wait_done(chatter.message_id)
        assert await adapter.ask("what did Bob say?", chat="group") == ["ok"]
        [row] = await bot.store.history.messages([chatter.message_id])
    assert row.status == "context"
    assert seen == [["lunch at noon?", "what did Bob say?"]]


async def test_a_message_accepted_with_a_skip_reason_is_stored_but_never_handled(
    database_url: str,
) -> None:
    from botkit import ConversationRef, Sender
    from botkit import Message as Msg

    handled: list[str] = []
    plugin = Plugin("p")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        handled.append(message.text)
        return "ok"

    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        assert adapter.inbox is not None
        accepted = await adapter.inbox.accept(
            Msg(ConversationRef("test", "c"), Sender("mailer-daemon"), "bounce", "b1"),
            skip="bounce: empty Return-Path",
        )
        await bot.dispatcher.idle()
        [row] = await bot.store.history.messages([accepted.message_id])
    assert handled == []
    assert row.status == "skipped"
    assert row.error == "bounce: empty Return-Path"


async def test_streamed_edits_including_the_last_keep_the_channels_pace(
    database_url: str,
) -> None:
    plugin = Plugin("fast")

    async def fragments() -> object:
        for i in range(30):
            await asyncio.sleep(0.01)
            yield f"w{i} "

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> None:
        await ctx.stream(fragments())  # type: ignore[arg-type]

    adapter = RecordingAdapter(capabilities=Capabilities(edits=True, edit_interval=0.1))
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
        await adapter.ask("go")
    [sent] = adapter.sent
    assert sent.text.split() == [f"w{i}" for i in range(30)]
    gaps = [b - a for a, b in zip(adapter.change_times, adapter.change_times[1:], strict=False)]
    assert len(gaps) >= 2
    # no two changes of the message closer than edit_interval: each waits from when the
    # change before it returned, so this lower bound holds however loaded the machine is
    assert min(gaps) >= 0.1


def _failure_count(bot: Bot, stage: str) -> float:
    value = bot.metrics.registry.get_sample_value("botkit_failures_total", {"stage": stage})
    return value or 0.0


async def test_a_model_that_refuses_the_bots_key_is_one_error_line_and_no_try_again(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = RecordingAdapter()
    async with FakeOpenAI() as fake:
        fake.default = unauthorized()
        model = OpenAIChatClient(fake.url, Secret("sk-wrong"), "gpt-4o-mini", models=ModelTable())
        async with model, make_bot(database_url, {"test": adapter}, model=model) as bot:
            with caplog.at_level(logging.WARNING):
                assert await adapter.ask("hello") == [CONFIG_APOLOGY]
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

    adapter = RecordingAdapter()
    with caplog.at_level(logging.WARNING):
        async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
            assert await adapter.ask("hi") == [
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

    adapter = RecordingAdapter()
    with caplog.at_level(logging.WARNING):
        async with make_bot(database_url, {"test": adapter}, plugins=[plugin]):
            assert await adapter.ask("hi") == [APOLOGY]
    assert [r for r in caplog.records if r.exc_info is not None and "boom" in str(r.exc_info[1])]
