"""The outbox through a real Bot: retries, refusals, Retry-After, one send per reply."""

from __future__ import annotations

import asyncio
import time

from botkit import (
    Context,
    ConversationRef,
    Message,
    Plugin,
    RateLimitError,
    RequestRejectedError,
    Sender,
    ServiceUnavailableError,
)
from botkit.dispatch import _outgoing
from botkit.outbox import draft_of, reply_of
from botkit.testing import InMemoryChannel, run_bot


async def test_outbox_retries_a_failed_send_until_it_is_delivered_once(database_url: str) -> None:
    adapter = InMemoryChannel()
    adapter.fail_sends(
        ServiceUnavailableError("test", "down"),
        RateLimitError("test", "slow down", retry_after=0.01),
    )
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"outbox": {"backoff_base": 0.01}},
    ).bot
    async with bot:
        message_id = await adapter.receive("hello")
        await bot.inbox.wait_done(message_id)
        [reply] = await bot.store.history.messages([message_id + 1])
    assert adapter.send_attempts == 3
    assert len(adapter.sent) == 1
    assert reply.status == "delivered"
    assert reply.attempts == 3


async def test_a_rejected_send_is_not_retried_and_later_replies_still_go(
    database_url: str,
) -> None:
    adapter = InMemoryChannel()
    adapter.fail_sends(RequestRejectedError("test", "chat not found", code="chat_not_found"))
    async with run_bot(database_url=database_url, channels=[adapter], model="config").bot as bot:
        first = await adapter.receive("one")
        await bot.inbox.wait_done(first)
        second = await adapter.receive("two")
        await bot.inbox.wait_done(second)
        failed = [
            r for r in await bot.store.history.messages(list(range(1, 10))) if r.direction == "out"
        ]
    assert adapter.send_attempts == 2
    assert [r.status for r in failed] == ["failed", "delivered"]
    assert "chat not found" in (failed[0].error or "")


async def test_a_long_retry_after_is_scheduled_not_slept_on(database_url: str) -> None:
    adapter = InMemoryChannel()
    adapter.fail_sends(RateLimitError("test", "flood", retry_after=3600))
    plugin = Plugin("p")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        return f"re {message.text}"

    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        first = await adapter.receive("one", chat="a")
        await asyncio.wait_for(bot.inbox.wait_done(first), 5)  # the worker did not sleep
        other = await adapter.receive("two", chat="b")
        await asyncio.wait_for(bot.inbox.wait_done(other), 5)
        rows = [
            r for r in await bot.store.history.messages(list(range(1, 10))) if r.direction == "out"
        ]
    waiting = next(r for r in rows if r.text == "re one")
    assert waiting.status == "pending"
    assert waiting.next_attempt_at is not None
    assert [s.text for s in adapter.sent] == ["re two"]


async def test_a_flush_waiting_on_the_lock_does_not_resend_a_reply_being_sent(
    database_url: str,
) -> None:
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[], model="config"
    ).bot as bot:
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
