"""Streamed replies through a real Bot: first show, throttled edits, overflow, failed edits."""

from __future__ import annotations

import asyncio

from botkit import (
    Capabilities,
    Context,
    Message,
    Plugin,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit.testing import InMemoryChannel, run_bot


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

    adapter = InMemoryChannel(
        capabilities=Capabilities(edits=True, max_length=4000, edit_interval=0.03, typing=True)
    )
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        message_id = await adapter.receive("hi")
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

    adapter = InMemoryChannel(
        capabilities=Capabilities(edits=True, max_length=4000, edit_interval=1.0)
    )
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        await bot.inbox.wait_done(await adapter.receive("fast"))
        [fast] = adapter.sent
        assert (fast.text, fast.edits) == ("Quick and whole.", [])
        await bot.inbox.wait_done(await adapter.receive("slow"))
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

    adapter = InMemoryChannel(
        capabilities=Capabilities(edits=True, max_length=400, edit_interval=0)
    )
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot:
        await adapter.exchange("go")
    assert len(adapter.sent) >= 2
    assert all(len(s.text) <= 400 for s in adapter.sent)
    assert " ".join(s.text for s in adapter.sent).split() == (paragraph * 6).split()


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

    adapter = InMemoryChannel(capabilities=Capabilities(edits=True, edit_interval=0.1))
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot:
        await adapter.exchange("go")
    [sent] = adapter.sent
    assert sent.text.split() == [f"w{i}" for i in range(30)]
    gaps = [b - a for a, b in zip(adapter.change_times, adapter.change_times[1:], strict=False)]
    assert len(gaps) >= 2
    # no two changes of the message closer than edit_interval: each waits from when the
    # change before it returned, so this lower bound holds however loaded the machine is
    assert min(gaps) >= 0.1


async def test_a_failed_last_edit_sends_the_whole_answer_again(database_url: str) -> None:
    plugin = Plugin("p")

    async def chunks() -> object:
        yield "Hello"
        await asyncio.sleep(0.2)  # past the first show's moment (one edit interval)
        yield " world, this is the whole answer."

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> None:
        await ctx.stream(chunks())  # type: ignore[arg-type]

    adapter = InMemoryChannel(capabilities=Capabilities(edits=True, edit_interval=0.1))
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        adapter.fail_edits(RequestRejectedError("test", "message cannot be edited"))
        await adapter.exchange("go")
        out = [
            r for r in await bot.store.history.messages(list(range(1, 5))) if r.direction == "out"
        ]
        metrics = bot.metrics.render().decode()
    # the refused edit counts among the channel's send failures
    assert 'botkit_send_failures_total{channel="test",kind=' in metrics
    assert [s.text for s in adapter.sent] == ["Hello", "Hello world, this is the whole answer."]
    assert [(r.status, r.text) for r in out] == [
        ("failed", "Hello"),
        ("delivered", "Hello world, this is the whole answer."),
    ]


async def test_a_failed_overflow_send_after_a_stream_is_retried(database_url: str) -> None:
    plugin = Plugin("p")

    async def chunks() -> object:
        yield "a" * 30
        yield " " + "b" * 30

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> None:
        await ctx.stream(chunks())  # type: ignore[arg-type]

    adapter = InMemoryChannel(
        capabilities=Capabilities(max_length=40, edits=True, edit_interval=0)
    )
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"outbox": {"backoff_base": 0.01}},
    ).bot
    async with bot:
        original = adapter.send
        calls = {"n": 0}

        async def send(*args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] == 2:  # the overflow
                raise ServiceUnavailableError("test", "503")
            return await original(*args, **kwargs)  # type: ignore[arg-type]

        adapter.send = send  # type: ignore[method-assign,assignment]
        await adapter.exchange("go")
        out = [
            r for r in await bot.store.history.messages(list(range(1, 5))) if r.direction == "out"
        ]
    assert [s.text for s in adapter.sent] == ["a" * 30, "b" * 30]
    assert [r.status for r in out] == ["delivered", "delivered"]
