"""Summaries: one call for short input, map-reduce past the window, channel hours, digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from botkit import (
    ChatRequest,
    ConfigError,
    Context,
    ConversationRef,
    Message,
    Plugin,
    PluginRuntime,
)
from botkit.llm import TokenCounter
from botkit.testing import FakeModel, InMemoryChannel
from botkit_summary import Digest, chunk_lines, parse_hours
from botkit_summary import plugin as summary
from botkit_summary.mapreduce import MAP_PROMPT, REDUCE_PROMPT
from botkit_summary.plugin import _maybe_send
from tests.plugins.conftest import StartBot

MAP_START = MAP_PROMPT.split("{")[0]
notes = Plugin("notes")


@notes.on_message()
async def noted(message: Message, ctx: Context) -> str:
    """Answer every message briefly, so history builds up without chat calls."""
    return "noted"


def _topic(request: ChatRequest) -> str:
    """A fake summary: the words after the first speaker of the input, tagged by step."""
    system = str(request.messages[0]["content"])
    text = str(request.messages[-1]["content"])
    if system.startswith(MAP_START):
        step = "map"
    elif system.startswith(REDUCE_PROMPT):
        step = "reduce"
    else:
        step = "one"
    return f"[{step}] {' '.join(text.split()[:4])}"


def test_lines_are_packed_into_chunks_that_fit_and_long_lines_are_cut() -> None:
    counter = TokenCounter("cl100k_base")
    lines = [f"ann: message number {i} " + "word " * 20 for i in range(30)]
    lines.append("bob: " + "verylong " * 400)
    chunks = chunk_lines(lines, 200, counter)
    assert all(sum(counter.count(line) + 1 for line in chunk) <= 200 for chunk in chunks)
    assert [line for chunk in chunks for line in chunk][:30] == lines[:30]  # order kept
    assert len(chunks) > 5


async def test_a_short_conversation_is_summarised_in_one_call(start_bot: StartBot) -> None:
    model = FakeModel().reply("- Ann asked about the launch date.", purpose="summary")
    async with start_bot(plugins=[summary, notes], model=model) as bot:
        await bot.send("When do we launch?", user="ann", name="Ann")
        await bot.send("Next Tuesday", user="bob", name="Bob")
        answer = await bot.ask("/summary")
    assert answer == "Summary of this conversation:\n\n- Ann asked about the launch date."
    [request] = model.requests
    assert request.purpose == "summary"
    assert request.messages[1]["content"] == (
        "Ann: When do we launch?\nassistant: noted\nBob: Next Tuesday\nassistant: noted"
    )


async def test_a_history_longer_than_the_window_is_summarised_map_reduce(
    start_bot: StartBot,
) -> None:
    model = FakeModel(context_window=1200, max_output_tokens=400).respond_with(_topic)
    settings = {"summary": {"summary_tokens": 200, "parallel": 2}}
    async with start_bot(plugins=[summary, notes], model=model, settings=settings) as bot:
        for i in range(40):
            await bot.send(
                f"topic{i} " + "details of the plan and its numbers " * 8, user=f"u{i % 3}"
            )
        answer = await bot.ask("/summary")
        calls = sum(row.calls for row in await bot.store.usage.report())
    requests = model.requests_for("summary")
    counter = TokenCounter("cl100k_base")
    transcript_tokens = sum(counter.count(str(r.messages[1]["content"])) for r in requests)
    assert transcript_tokens > 1200  # more than one window in all
    maps = [r for r in requests if str(r.messages[0]["content"]).startswith(MAP_START)]
    assert len(maps) >= 3
    assert f"part 1 of {len(maps)}" in str(maps[0].messages[0]["content"])
    for request in requests:  # every single request fits the window with its reply
        prompt = counter.count_messages(request.messages)
        assert prompt + (request.max_tokens or 0) <= 1200
    assert str(requests[0].messages[1]["content"]).startswith("u0: topic0")
    final = requests[-1]
    assert str(final.messages[0]["content"]).startswith(REDUCE_PROMPT)
    assert "[map] u0: topic0" in str(final.messages[1]["content"])
    assert answer.startswith("Summary of this conversation:\n\n[reduce] ")
    assert calls == len(model.requests)  # every call recorded, with its cost


async def test_partial_summaries_that_do_not_fit_together_are_merged_in_levels(
    start_bot: StartBot,
) -> None:
    def verbose(request: ChatRequest) -> str:
        # as long as allowed: a third of the room each, so only three fit one request
        return " ".join(["fact"] * ((request.max_tokens or 10) - 5))

    model = FakeModel(context_window=1000, max_output_tokens=300).respond_with(verbose)
    settings = {"summary": {"summary_tokens": 300}}
    async with start_bot(plugins=[summary, notes], model=model, settings=settings) as bot:
        for i in range(40):
            await bot.send(f"point {i}: " + "the budget and the schedule " * 10)
        assert (await bot.ask("/summary")).startswith("Summary of this conversation:")
    requests = model.requests_for("summary")
    reduces = [r for r in requests if str(r.messages[0]["content"]).startswith(REDUCE_PROMPT)]
    assert len(reduces) >= 3  # at least one level between the parts and the final merge
    counter = TokenCounter("cl100k_base")
    assert all(counter.count_messages(r.messages) + (r.max_tokens or 0) <= 1000 for r in requests)


async def test_the_last_hours_of_a_channel_come_from_its_history(start_bot: StartBot) -> None:
    now = datetime.now(UTC)
    channel = InMemoryChannel("team", history=[])
    channel.post("old news", user="ann", at=now - timedelta(hours=8))
    channel.post("deploy went fine", user="bob", at=now - timedelta(hours=2))
    channel.post("other chat", user="bob", chat="elsewhere", at=now - timedelta(hours=1))
    model = FakeModel().reply("Bob says the deploy went fine.", purpose="summary")
    async with start_bot(plugins=[summary, notes], model=model, channels=[channel]) as bot:
        answer = await bot.ask("/summary 6h", channel="team")
    assert answer == "Summary of the last 6 hours:\n\nBob says the deploy went fine."
    assert model.requests[0].messages[1]["content"] == "bob: deploy went fine"


async def test_without_channel_history_the_last_hours_come_from_the_store(
    start_bot: StartBot,
) -> None:
    now = datetime.now(UTC)
    model = FakeModel().reply("recent only", purpose="summary")
    async with start_bot(plugins=[summary, notes], model=model) as bot:
        await bot.send("yesterday's topic", at=now - timedelta(hours=20))
        await bot.send("today's topic", at=now - timedelta(minutes=30))
        assert await bot.ask("/summary 90m") == "Summary of the last 1.5 hours:\n\nrecent only"
        assert await bot.ask("/summary soon") == (
            "Usage: /summary (this conversation) or /summary 6h (the last 6 hours)"
        )
        assert await bot.ask("/summary 30d") == "I can summarise at most the last 168 hours."
    # the reply to the old message was written just now: it counts
    assert model.requests[0].messages[1]["content"] == (
        "assistant: noted\nuser: today's topic\nassistant: noted"
    )


async def test_an_empty_conversation_needs_no_model(start_bot: StartBot) -> None:
    model = FakeModel()
    async with start_bot(plugins=[summary], model=model) as bot:
        assert (
            await bot.ask("/summary") == "There is nothing to summarise in this conversation yet."
        )
    assert model.requests == []


def test_durations() -> None:
    assert [parse_hours(t) for t in ("6h", "6", "90m", "2d", "1.5 hours", "x", "-1h")] == [
        6,
        6,
        1.5,
        48,
        1.5,
        None,
        None,
    ]


DIGEST: dict[str, Any] = {
    "summary": {
        "digests": [
            {
                "name": "Daily digest",
                "source": {"channel": "test", "chat_id": "chat"},
                "to": {"channel": "ops", "chat_id": "leads"},
                "cron": "0 8 * * *",
            }
        ]
    }
}


async def test_a_daily_digest_is_sent_when_its_time_has_come(start_bot: StartBot) -> None:
    model = FakeModel().reply("The team shipped 1.2.", purpose="summary")
    async with start_bot(
        plugins=[summary, notes], model=model, settings=DIGEST, channels=["test", "ops"]
    ) as bot:
        await bot.send("we shipped 1.2")
        state = bot.store.state("plugin:summary")
        await bot.run_job("summary")  # the first run only starts the clock
        assert bot.channels["ops"].sent == []
        await bot.run_job("summary")  # not due again yet
        assert bot.channels["ops"].sent == []
        await state.set(
            "digest:Daily digest:last",
            (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat(),
        )
        await bot.run_job("summary")
        [digest] = [s.text for s in bot.channels["ops"].sent]
    assert digest == "Daily digest: the last 24 hours in test:chat:\n\nThe team shipped 1.2."
    assert model.requests[0].messages[1]["content"] == "user: we shipped 1.2\nassistant: noted"


async def test_a_digest_due_before_the_autumn_clock_change_is_sent_from_the_repeated_hour(
    start_bot: StartBot,
) -> None:
    digest = Digest(
        "Night digest",
        ConversationRef("test", "chat"),
        ConversationRef("ops", "leads"),
        cron="30 2 * * *",
        timezone="Europe/Berlin",
    )
    async with start_bot(plugins=[summary], settings=DIGEST, channels=["test", "ops"]) as bot:
        job = PluginRuntime(bot.bot.runtime, "summary")
        await job.state.set("digest:Night digest:last", "2025-10-26T01:50:00+02:00")
        # 02:10 CET: 02:30 CEST (an instant 40 minutes ago) is past, though 02:30 > 02:10
        now = datetime(2025, 10, 26, 1, 10, tzinfo=UTC)
        assert await _maybe_send(job, digest, now=now)
        assert not await _maybe_send(job, digest, now=now + timedelta(minutes=30))


async def test_a_digest_with_a_bad_cron_stops_the_bot_at_start(start_bot: StartBot) -> None:
    bad = {"summary": {"digests": [{**DIGEST["summary"]["digests"][0], "cron": "0 25 * * *"}]}}
    with pytest.raises(ConfigError, match=r"plugins\.summary\.digests\[0\]\.cron"):
        async with start_bot(plugins=[summary], settings=bad):
            pass


async def test_a_digest_of_a_whole_mailbox_covers_every_thread(start_bot: StartBot) -> None:
    model = FakeModel().reply("Two customers wrote.", purpose="summary")
    async with start_bot(
        plugins=[summary, notes], model=model, settings=DIGEST, channels=["test", "ops"]
    ) as bot:
        await bot.send("refund please", chat="chat", thread="<a@mail>", user="ann")
        await bot.send("where is my parcel", chat="chat", thread="<b@mail>", user="bob")
        await bot.send("elsewhere", chat="other", user="cy")
        state = bot.store.state("plugin:summary")
        await state.set(
            "digest:Daily digest:last",
            (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat(),
        )
        await bot.run_job("summary")
        [digest] = [s.text for s in bot.channels["ops"].sent]
    assert digest.endswith("Two customers wrote.")
    transcript = model.requests[0].messages[1]["content"]
    assert "ann: refund please" in transcript
    assert "bob: where is my parcel" in transcript
    assert "elsewhere" not in transcript
