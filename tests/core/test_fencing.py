"""Fenced claims: a process whose claim lapsed and was taken over changes nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from botkit import (
    Capabilities,
    ConversationRef,
    Message,
    Reply,
    Sender,
    claims_trace,
    ensure_claims_live,
)
from botkit.claims import Claims, sending_under
from botkit.exceptions import ClaimLostError, StoreUnavailableError
from botkit.metrics import Metrics
from botkit.outbox import Outbox
from botkit.store import Claim, Finished, OutboundDraft, Store, StoredMessage, ToolCallRecord
from botkit.testing import FakeModel, InMemoryChannel, run_bot

UNFINISHED = ("pending", "processing")


def _soon() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=30)


def _past() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)


def _message(external_id: str = "e1") -> Message:
    return Message(ConversationRef("test", "c1"), Sender("u1"), "hello", external_id)


async def _taken_over(store: Store) -> tuple[int, int]:
    """A message accepted by A, whose claim lapsed, then taken over by B."""
    accepted, conversation_id = await store.inbound.accept(_message(), claim=Claim("A", _soon()))
    message_id = accepted.message_id
    assert await store.claims.renew(Claim("A", _past())) == 1  # A stalls past its lease
    taken = await store.claims.claim(
        [message_id], Claim("B", _soon()), status="processing", from_statuses=UNFINISHED
    )
    assert taken == {message_id: 2}
    return message_id, conversation_id


async def test_a_finish_after_the_claim_was_taken_over_stores_nothing(store: Store) -> None:
    message_id, conversation_id = await _taken_over(store)
    draft = OutboundDraft(conversation_id, "test", "A's late answer", reply_to_id=message_id)
    with pytest.raises(ClaimLostError):
        await store.inbound.finish(
            [message_id], "done", [draft], claim=Claim("A", _soon()), fence={message_id: 1}
        )
    assert await store.outbound.pending(conversation_id) == []
    [row] = await store.history.messages([message_id])
    assert row.status == "processing"
    assert row.claimed_by == "B"

    draft = OutboundDraft(conversation_id, "test", "B's answer", reply_to_id=message_id)
    await store.inbound.finish(
        [message_id], "done", [draft], claim=Claim("B", _soon()), fence={message_id: 2}
    )
    assert [r.text for r in await store.outbound.pending(conversation_id)] == ["B's answer"]


async def test_a_delivery_mark_by_a_lapsed_holder_changes_nothing(store: Store) -> None:
    _, conversation_id = await store.inbound.accept(_message())
    out_id = await store.outbound.add(
        OutboundDraft(conversation_id, "test", "reply"), claim=Claim("A", _soon())
    )
    assert await store.claims.renew(Claim("A", _past())) == 1
    taken = await store.claims.claim(
        [out_id], Claim("B", _soon()), status="sending", from_statuses=("pending", "sending")
    )
    assert taken == {out_id: 2}
    with pytest.raises(ClaimLostError):
        await store.outbound.update(out_id, fence=("A", 1), status="delivered")
    [row] = await store.history.messages([out_id])
    assert (row.status, row.claimed_by) == ("sending", "B")
    await store.outbound.update(out_id, fence=("B", 2), status="delivered")
    [row] = await store.history.messages([out_id])
    assert row.status == "delivered"


async def test_a_postponement_by_a_lapsed_holder_changes_nothing(store: Store) -> None:
    message_id, _ = await _taken_over(store)
    with pytest.raises(ClaimLostError):
        await store.inbound.postpone(
            [message_id], Claim("A", _soon()), {message_id: 1}, due=_soon(), error="down"
        )
    [row] = await store.history.messages([message_id])
    assert (row.status, row.next_attempt_at, row.attempts) == ("processing", None, 0)


async def test_a_tool_call_by_a_lapsed_holder_is_not_stored_so_the_tool_never_runs(
    store: Store,
) -> None:
    message_id, _ = await _taken_over(store)
    call = ToolCallRecord(message_id, 0, "call_1", "book", '{"room": 1}')
    with pytest.raises(ClaimLostError):
        await store.tool_calls.start(call, held=("A", {message_id: 1}))
    assert await store.tool_calls.of([message_id]) == []
    row = await store.tool_calls.start(call, held=("B", {message_id: 2}))
    [stored] = await store.tool_calls.of([message_id])
    assert (stored.id, stored.status, stored.result) == (row, "running", None)


async def test_claims_lapse_by_the_databases_clock_on_postgresql(store: Store) -> None:
    """A process whose clock runs an hour late still sees a lapsed claim as lapsed on
    PostgreSQL (judged by now() there); SQLite serves one process, judged by its clock."""
    accepted, _ = await store.inbound.accept(_message(), claim=Claim("A", _past()))
    an_hour_late = datetime.now(UTC) - timedelta(hours=1)
    found = [r.id for r in await store.inbound.unfinished(now=an_hour_late)]
    if store.db.sqlite:
        assert found == []
    else:
        assert found == [accepted.message_id]


def test_claims_are_live_only_within_a_lease_of_the_last_renewal() -> None:
    claims = Claims(lease=0.05)
    taken = time.monotonic()
    time.sleep(0.06)  # past the lease: may have lapsed, whatever the machine's load
    assert not claims.live(taken)
    claims.lease = 60.0
    assert claims.live(time.monotonic())  # a claim taken just now is live for a lease
    assert claims.claim().owner == claims.owner


def test_claims_taken_before_a_gap_in_renewals_stay_lost() -> None:
    """A process that could not renew for longer than a claim is surely live (paused,
    or its database away) may have had its claims taken over: the renewal after the gap
    extends only those still held, so none taken before the gap counts as live."""
    claims = Claims(lease=0.1)
    before = time.monotonic()
    claims.renewal_sent(before)
    assert claims.live(before)
    time.sleep(0.15)  # longer than a lease: a gap, however loaded the machine
    after = time.monotonic()
    claims.renewal_sent(after)
    assert not claims.live(before)
    assert claims.live(after)


def test_a_request_under_lapsed_claims_is_refused_before_it_goes_out() -> None:
    ensure_claims_live()  # outside a send: nothing to check
    lapsed = Claims(lease=0.05)
    taken = time.monotonic()
    time.sleep(0.06)
    live = Claims(lease=60.0)
    with sending_under(live, time.monotonic()):
        ensure_claims_live()
    with sending_under(lapsed, taken), pytest.raises(ClaimLostError):
        ensure_claims_live()
    ensure_claims_live()  # the mark ends with the send


async def test_an_aiohttp_request_under_lapsed_claims_writes_not_a_byte() -> None:
    """``claims_trace``: the check is made as the request's first bytes are about to be
    written; refused, the server receives nothing, and the caller sees the
    ClaimLostError (itself, or as the cause of aiohttp's error)."""
    received: list[bytes] = []

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(server, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/api"
    lapsed = Claims(lease=0.05)
    taken = time.monotonic()
    await asyncio.sleep(0.06)
    try:
        async with aiohttp.ClientSession(trace_configs=[claims_trace()]) as session:
            with (
                sending_under(lapsed, taken),
                pytest.raises((ClaimLostError, aiohttp.ClientError)) as refused,
            ):
                await session.post(url, data=b"text=hello")
            error = refused.value  # raised as is, or as the cause of aiohttp's error
            assert isinstance(error, ClaimLostError) or isinstance(error.__cause__, ClaimLostError)
            await asyncio.sleep(0.05)
            assert received in ([], [b""])  # at most a connection, never a request
            with sending_under(Claims(lease=60.0), time.monotonic()):
                async with session.post(url, data=b"text=hello") as response:
                    assert await response.text() == "ok"
            assert received[-1].endswith(b"text=hello")  # a live claim sends
    finally:
        listening.close()
        await listening.wait_closed()


def test_the_database_clock_is_read_from_the_quickest_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reading taken over a slow round trip (a busy loop, a wait for a connection) is
    off by up to half of it; it must not move every claim's expiry, so the quickest
    reading of the last minute is kept, and a newer one replaces it after that."""
    claims = Claims(lease=2.0)
    at = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    quick = timedelta(milliseconds=2)
    claims.clock_read(at + timedelta(milliseconds=1), at, at + quick)  # the same clock
    assert abs(claims.clock_offset.total_seconds()) < 0.001
    slow = timedelta(seconds=2)  # the reading came back at once, its reply waited 2 s
    claims.clock_read(
        at + timedelta(seconds=10), at + timedelta(seconds=10), at + timedelta(seconds=12)
    )
    assert abs(claims.clock_offset.total_seconds()) < 0.001  # the slow one is not believed
    later = time.monotonic() + 61
    monkeypatch.setattr("botkit.claims.time.monotonic", lambda: later)
    claims.clock_read(
        at + timedelta(seconds=70), at + timedelta(seconds=69), at + timedelta(seconds=69) + slow
    )
    assert claims.clock_offset == timedelta(0)  # a minute on, the newest reading counts


async def test_a_message_is_finished_once_even_by_its_holder(store: Store) -> None:
    """A finish tried again (its first commit went unheard) finds the message finished
    and stores nothing more: one message, one set of replies."""
    accepted, conversation_id = await store.inbound.accept(_message(), claim=Claim("A", _soon()))
    message_id = accepted.message_id
    draft = OutboundDraft(conversation_id, "test", "the answer", reply_to_id=message_id)
    claim = Claim("A", _soon())
    await store.inbound.finish([message_id], "done", [draft], claim=claim, fence={message_id: 1})
    with pytest.raises(ClaimLostError):
        await store.inbound.finish(
            [message_id], "done", [draft], claim=claim, fence={message_id: 1}
        )
    assert [r.text for r in await store.outbound.pending(conversation_id)] == ["the answer"]
    assert await store.inbound.finished_under("A", {message_id: 1})  # it was A's own finish
    assert not await store.inbound.finished_under("A", {message_id: 2})
    assert not await store.inbound.finished_under("B", {message_id: 1})


async def test_a_finish_under_a_lost_claim_is_not_the_losers(store: Store) -> None:
    message_id, _ = await _taken_over(store)
    assert not await store.inbound.finished_under("B", {message_id: 2})  # not finished yet
    await store.inbound.finish(
        [message_id], "done", [], claim=Claim("B", _soon()), fence={message_id: 2}
    )
    assert await store.inbound.finished_under("B", {message_id: 2})
    assert not await store.inbound.finished_under("A", {message_id: 1})


async def test_a_finish_whose_commit_went_unheard_records_its_model_calls_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], model=FakeModel()
    ).bot as bot:
        finish = bot.store.inbound.finish
        unheard: list[object] = []

        async def finish_then_lose_the_connection(*args: Any, **kwargs: Any) -> Finished:
            finished = await finish(*args, **kwargs)
            if not unheard:  # committed; the answer never reaches the bot
                unheard.append(finished)
                raise StoreUnavailableError("connection lost during the commit")
            return finished

        monkeypatch.setattr(bot.store.inbound, "finish", finish_then_lose_the_connection)
        assert await adapter.exchange("hello") == ["echo: hello"]
        assert unheard
        assert [row.calls for row in await bot.store.usage.report()] == [1]


def test_every_claim_of_a_process_lapses_together() -> None:
    """A message and the reply to it, claimed a moment apart, lapse at the same moment,
    the one the last renewal set: a take-over of the message never finds its reply
    still held by the process it took the message from."""
    claims = Claims(lease=30.0)
    first = claims.claim()
    time.sleep(0.01)
    assert claims.claim() == first
    renewed = claims.renewal()
    assert renewed.until > first.until
    assert claims.claim() == renewed


async def test_a_reply_stored_after_its_message_was_taken_over_is_refused(store: Store) -> None:
    message_id, conversation_id = await _taken_over(store)
    late = OutboundDraft(conversation_id, "test", "A's late reply", reply_to_id=message_id)
    with pytest.raises(ClaimLostError):
        await store.outbound.add(late, held=("A", {message_id: 1}))
    assert await store.outbound.pending(conversation_id) == []

    draft = OutboundDraft(conversation_id, "test", "B's reply", reply_to_id=message_id)
    await store.outbound.add(draft, held=("B", {message_id: 2}))
    assert [r.text for r in await store.outbound.pending(conversation_id)] == ["B's reply"]


async def _posted_reply_held_by_a(
    store: Store, channel: InMemoryChannel, held_for: float
) -> tuple[StoredMessage, int]:
    """A message taken over by B, and the reply A posted to it (shown in the channel),
    which A still holds for ``held_for`` seconds."""
    message_id, conversation_id = await _taken_over(store)
    conversation = ConversationRef("test", "c1")
    sent = await channel.send(conversation, Reply("A's half answer"), delivery_id="botkit-0")
    draft = OutboundDraft(conversation_id, "test", sent.text, reply_to_id=message_id)
    until = datetime.now(UTC) + timedelta(seconds=held_for)
    reply_id = await store.outbound.add(draft, claim=Claim("A", until))
    await store.outbound.update(reply_id, status="streaming", external_id=sent.external_id)
    [earlier] = await store.history.messages([reply_id])
    return earlier, conversation_id


async def test_a_reply_still_held_elsewhere_is_waited_for_then_edited(store: Store) -> None:
    channel = InMemoryChannel(capabilities=Capabilities(edits=True))
    earlier, conversation_id = await _posted_reply_held_by_a(store, channel, held_for=0.5)
    outbox = Outbox(store, {"test": channel}, Metrics(), claims=Claims(lease=5.0, owner="B"))
    draft = OutboundDraft(conversation_id, "test", "B's whole answer", reply_to_id=1)

    await outbox.replace(earlier, draft)

    assert [s.text for s in channel.sent] == ["B's whole answer"]
    [row] = await store.history.messages([earlier.id])
    assert (row.status, row.text) == ("delivered", "B's whole answer")


async def test_a_reply_kept_by_a_live_process_is_left_to_it(store: Store) -> None:
    channel = InMemoryChannel(capabilities=Capabilities(edits=True))
    earlier, conversation_id = await _posted_reply_held_by_a(store, channel, held_for=60)
    outbox = Outbox(store, {"test": channel}, Metrics(), claims=Claims(lease=0.3, owner="B"))
    draft = OutboundDraft(conversation_id, "test", "B's whole answer", reply_to_id=1)

    await outbox.replace(earlier, draft)  # gives up after one of its leases

    assert [s.text for s in channel.sent] == ["A's half answer"]
    assert await store.outbound.pending(conversation_id) == []


async def test_state_written_for_a_message_taken_over_is_refused(store: Store) -> None:
    """A side-effect tool's question is kept in state; a process that lost the message
    must not replace the question the user was really asked."""
    message_id, _ = await _taken_over(store)
    with pytest.raises(ClaimLostError):
        await store.state("plugin:x").set("pending", {"tool": "A's"}, held=("A", {message_id: 1}))
    assert await store.state("plugin:x").get("pending", "none") == "none"
    await store.state("plugin:x").set("pending", {"tool": "B's"}, held=("B", {message_id: 2}))
    assert await store.state("plugin:x").get("pending") == {"tool": "B's"}
