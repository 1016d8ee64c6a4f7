"""Failure paths found in review: each pins down a way a message could be lost or doubled."""

from __future__ import annotations

import asyncio
import time

import pytest

from botkit import (
    Capabilities,
    Context,
    ConversationRef,
    Message,
    Plugin,
    RequestRejectedError,
    Sender,
    ServiceUnavailableError,
    StoreError,
)
from botkit.dispatch import _outgoing
from botkit.llm import ChatRequest, StandInModel
from botkit.outbox import draft_of, reply_of
from botkit.store import Store, inbound
from tests.fakes.bots import make_bot
from tests.fakes.recording_adapter import RecordingAdapter


def _msg(ref: ConversationRef, external_id: str, text: str) -> Message:
    return Message(
        conversation=ref, sender=Sender(external_id), text=text, external_id=external_id
    )


async def test_a_rolled_back_accept_does_not_leave_a_stale_conversation_id(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = ConversationRef("test", "alice-dm"), ConversationRef("test", "bob-dm")

    def boom(value: object) -> object:
        raise RuntimeError("failure after the conversation row was inserted")

    with monkeypatch.context() as patch:
        patch.setattr(inbound, "jsonable", boom)
        with pytest.raises(RuntimeError):
            await store.inbound.accept(_msg(alice, "a1", "alice secret"))
    _, bob_id = await store.inbound.accept(_msg(bob, "b1", "bob hello"))
    _, alice_id = await store.inbound.accept(_msg(alice, "a2", "alice again"))
    assert alice_id != bob_id
    assert [m.text for m in await store.history.turns(bob_id, before_id=None, limit=10)] == [
        "bob hello"
    ]


async def test_a_store_failure_in_a_worker_hands_the_message_back_to_be_answered(
    database_url: str,
) -> None:
    plugin = Plugin("p")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return "re " + message.text

    adapter = RecordingAdapter()
    bot = make_bot(database_url, {"test": adapter}, plugins=[plugin], bot={"claim_lease": 1.0})
    async with bot:
        real = bot.store.inbound.finish
        failures = [StoreError("could not finish message: connection reset")]

        async def flaky(*args: object, **kwargs: object) -> object:
            if failures:
                raise failures.pop()
            return await real(*args, **kwargs)  # type: ignore[arg-type]

        bot.store.inbound.finish = flaky  # type: ignore[method-assign,assignment]
        await adapter.say("hello")
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

    adapter = RecordingAdapter()
    group = ConversationRef("test", "g")
    async with make_bot(
        database_url, {"test": adapter}, plugins=[plugin], bot={"burst": "coalesce"}
    ) as bot:
        assert adapter.inbox is not None

        async def say(text: str, external_id: str, addressed: bool) -> int:
            message = Message(
                group, Sender("u"), text, external_id, metadata={"addressed": addressed}
            )
            assert adapter.inbox is not None
            return (await adapter.inbox.accept(message)).message_id

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


async def test_a_failed_last_edit_sends_the_whole_answer_again(database_url: str) -> None:
    plugin = Plugin("p")

    async def chunks() -> object:
        yield "Hello"
        await asyncio.sleep(0.2)  # past the first show's moment (one edit interval)
        yield " world, this is the whole answer."

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> None:
        await ctx.stream(chunks())  # type: ignore[arg-type]

    adapter = RecordingAdapter(capabilities=Capabilities(edits=True, edit_interval=0.1))
    async with make_bot(database_url, {"test": adapter}, plugins=[plugin]) as bot:
        adapter.fail_edits = [RequestRejectedError("test", "message cannot be edited")]
        await adapter.ask("go")
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

    adapter = RecordingAdapter(
        capabilities=Capabilities(max_length=40, edits=True, edit_interval=0)
    )
    bot = make_bot(
        database_url, {"test": adapter}, plugins=[plugin], outbox={"backoff_base": 0.01}
    )
    async with bot:
        original = adapter.send
        calls = {"n": 0}

        async def send(*args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] == 2:  # the overflow
                raise ServiceUnavailableError("test", "503")
            return await original(*args, **kwargs)  # type: ignore[arg-type]

        adapter.send = send  # type: ignore[method-assign,assignment]
        await adapter.ask("go")
        out = [
            r for r in await bot.store.history.messages(list(range(1, 5))) if r.direction == "out"
        ]
    assert [s.text for s in adapter.sent] == ["a" * 30, "b" * 30]
    assert [r.status for r in out] == ["delivered", "delivered"]


async def test_a_flush_waiting_on_the_lock_does_not_resend_a_reply_being_sent(
    database_url: str,
) -> None:
    adapter = RecordingAdapter()
    async with make_bot(database_url, {"test": adapter}, plugins=[]) as bot:
        ref = ConversationRef("test", "c1")
        conversation_id = await bot.store.history.conversation_id(ref)
        message = Message(ref, Sender("u"), "q", "x")
        lock = bot.outbox.lock(conversation_id)
        await lock.acquire()  # a flush that has just delivered the previous reply
        queued = asyncio.create_task(bot.outbox.flush(conversation_id))
        await asyncio.sleep(0)
        draft = draft_of(conversation_id, "test", reply_of("the answer", message), message)
        taken_at = time.monotonic()
        finished = await bot.store.inbound.finish([], "done", [draft], claim=bot.runtime.claim())
        assert finished.claimed
        rows = [_outgoing(i, draft, message) for i in finished.out_ids]
        sending = asyncio.create_task(bot.outbox.send_claimed(conversation_id, rows, taken_at))
        await asyncio.sleep(0)
        lock.release()
        await asyncio.gather(queued, sending)
    assert [s.text for s in adapter.sent] == ["the answer"]


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

    adapter = RecordingAdapter()
    bot = make_bot(
        database_url,
        {"test": adapter},
        plugins=[plugin],
        model=StandInModel(),
        bot={"shutdown_grace": 0.1},
    )
    await bot.start()
    await adapter.say("hi")
    await called.wait()
    await bot.stop()
    reopened = make_bot(
        database_url, {"test": RecordingAdapter()}, plugins=[], model=StandInModel()
    )
    await reopened.database.upgrade()
    try:
        [usage] = await reopened.store.usage.report()
    finally:
        await reopened.database.close()
    assert usage.calls == 1


async def test_budgets_see_calls_not_yet_stored_with_their_message(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    from botkit.store import CallRow

    call = CallRow("chat", "gpt-4", 100, 50, 1000, 1.0, True, None, 1, None, None, "test", "u1")
    since = datetime.now(UTC) - timedelta(days=1)
    store.usage.note_unsaved(call)
    assert await store.usage.spend(since=since, user_id="u1") == (150, 1000)
    assert await store.usage.spend(since=since, user_id="u2") == (0, 0)
    await store.usage.record_calls([call])
    assert await store.usage.spend(since=since, user_id="u1") == (150, 1000)  # counted once


async def test_a_stop_releases_waiters_of_messages_never_started(database_url: str) -> None:
    plugin = Plugin("p")
    release = asyncio.Event()

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        await release.wait()
        return "x"

    adapter = RecordingAdapter()
    bot = make_bot(database_url, {"test": adapter}, plugins=[plugin], bot={"shutdown_grace": 0.1})
    await bot.start()
    await adapter.say("one")
    queued = await adapter.say("two")  # behind "one" in the same conversation
    waiter = asyncio.create_task(bot.inbox.wait_done(queued))
    await asyncio.sleep(0.05)
    await bot.stop()
    await asyncio.wait_for(waiter, 5)  # does not hang
