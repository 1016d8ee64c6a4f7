"""The inbox: each message accepted once, skipped ones stored, a failed accept leaves nothing."""

from __future__ import annotations

import pytest

from botkit import (
    Context,
    ConversationRef,
    Message,
    Plugin,
    Sender,
)
from botkit.store import Store, inbound
from botkit.testing import InMemoryChannel, run_bot


async def test_duplicate_delivery_is_answered_once(database_url: str) -> None:
    adapter = InMemoryChannel()
    async with run_bot(database_url=database_url, channels=[adapter], model="config").bot as bot:
        first = await adapter.receive("hello", external_id="update-1")
        second = await adapter.receive("hello", external_id="update-1")
        assert first == second
        await bot.inbox.wait_done(first)
        await bot.dispatcher.idle()
    assert len(adapter.sent) == 1
    assert "You said: hello" in adapter.sent[0].text


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

    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model="config"
    ).bot as bot:
        accepted = await adapter.deliver(
            Msg(ConversationRef("test", "c"), Sender("mailer-daemon"), "bounce", "b1"),
            skip="bounce: empty Return-Path",
        )
        await bot.dispatcher.idle()
        [row] = await bot.store.history.messages([accepted])
    assert handled == []
    assert row.status == "skipped"
    assert row.error == "bounce: empty Return-Path"


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


async def test_a_message_the_store_cannot_take_is_a_store_error_and_stores_nothing(
    database_url: str,
) -> None:
    from datetime import datetime

    from botkit.exceptions import StoreError

    adapter = InMemoryChannel()
    ref = ConversationRef("test", "c")
    naive = datetime(2026, 12, 5, 7, 30)  # an adapter's bug: a time without its zone
    async with run_bot(database_url=database_url, channels=[adapter]).bot as bot:
        with pytest.raises(StoreError, match="could not accept message"):
            await adapter.deliver(Message(ref, Sender("u"), "hello", "n1", received_at=naive))
        # the failed try left nothing behind: the same message is new when it comes again
        later = await bot.inbox.accept(Message(ref, Sender("u"), "hello", "n1"))
        assert not later.duplicate
        await bot.inbox.wait_done(later.message_id)
    assert [m.text for m in adapter.sent] == ["echo: hello"]
