"""Slack's native streams (chat.startStream / appendStream / stopStream), their fallbacks
to chat.update, and a stream cut off by a stop that the next process finishes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from botkit import ConversationRef, Message, RateLimitError, Reply, Sender
from botkit.testing import run_bot
from botkit_slack import SlackAdapter
from tests.adapters.slack.slack_helpers import StartAdapter, corpus, settings_for
from tests.fakes.openai_server import FakeOpenAI, echo, stream
from tests.fakes.slack_api import FakeSlack, Scripted

THREAD = ConversationRef("slack", "C111", "1595926230.009600")
MENTION_TS = "1595926230.009600"


def _asking(conversation: ConversationRef = THREAD, *, sender: Sender | None = None) -> Message:
    return Message(
        conversation,
        sender or Sender("W222", "Ada"),
        "hi",
        f"{conversation.chat_id}:{MENTION_TS}",
        metadata={"team_id": "T111"},
    )


def _params(slack: FakeSlack, method: str) -> list[dict[str, Any]]:
    return [call.params for call in slack.calls_to(method)]


async def test_a_thread_answer_streams_as_markdown_and_ends_with_its_delivery_metadata(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    started = await adapter.start_stream(_asking(), Reply("**Hi** th"), delivery_id="botkit-7")
    assert started is not None
    assert started.message is not None  # the stream is a message: recorded from the start
    ts = started.message.external_id
    grown = await adapter.append_stream(started, "**Hi** there, ")
    sent = await adapter.stop_stream(grown, "**Hi** there, and *more*.")

    [start] = _params(slack, "chat.startStream")
    assert start["markdown_text"] == "**Hi** th"  # standard Markdown, not mrkdwn
    assert (start["thread_ts"], start["recipient_user_id"], start["recipient_team_id"]) == (
        MENTION_TS,
        "W222",
        "T111",
    )
    assert [p["markdown_text"] for p in _params(slack, "chat.appendStream")] == ["ere, "]
    [stop] = _params(slack, "chat.stopStream")
    assert stop["markdown_text"] == "and *more*."
    assert stop["metadata"]["event_payload"]["delivery_id"] == "botkit-7"
    [message] = slack.posted("C111")
    assert message["text"] == "**Hi** there, and *more*."
    assert (message["ts"], message["thread_ts"], message["streaming"]) == (ts, MENTION_TS, False)
    assert sent.external_id == ts
    assert slack.calls_to("chat.postMessage") == slack.calls_to("chat.update") == []


async def test_no_stream_at_a_dms_top_level_nor_for_a_bot_nor_for_plain_text(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    dm = ConversationRef("slack", "D111")
    assert await adapter.start_stream(_asking(dm), Reply("Hi"), delivery_id="botkit-1") is None
    bot = Sender("B999", "other bot", is_bot=True)
    assert await adapter.start_stream(_asking(sender=bot), Reply("Hi"), delivery_id="b-2") is None
    plain = Reply("Hi", markup="plain")
    assert await adapter.start_stream(_asking(), plain, delivery_id="botkit-3") is None
    assert slack.calls_to("chat.startStream") == []


async def test_a_channel_that_refuses_streams_is_remembered(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    slack.fail("chat.startStream", "channel_type_not_supported")

    assert await adapter.start_stream(_asking(), Reply("Hi"), delivery_id="botkit-1") is None
    assert await adapter.start_stream(_asking(), Reply("Hi"), delivery_id="botkit-2") is None
    assert len(slack.calls_to("chat.startStream")) == 1
    elsewhere = ConversationRef("slack", "C222", "1595926230.000001")
    assert await adapter.start_stream(_asking(elsewhere), Reply("Hi"), delivery_id="botkit-3")


async def test_an_api_without_streams_is_remembered_for_every_channel(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    slack.script(
        "chat.startStream", Scripted(status=404, body={"ok": False, "error": "unknown_method"})
    )

    assert await adapter.start_stream(_asking(), Reply("Hi"), delivery_id="botkit-1") is None
    elsewhere = ConversationRef("slack", "C222", "1595926230.000001")
    assert await adapter.start_stream(_asking(elsewhere), Reply("Hi"), delivery_id="b-2") is None
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_a_stream_slack_ended_itself_is_finished_by_editing_the_same_message(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    started = await adapter.start_stream(_asking(), Reply("One"), delivery_id="botkit-1")
    assert started is not None
    slack.expire_stream("C111", started.stream_id)

    grown = await adapter.append_stream(started, "One two")
    await adapter.stop_stream(grown, "One two three")

    assert [p["error"] for p in _answers(slack, "chat.appendStream")] == [
        "message_not_in_streaming_state"
    ]
    updates = _params(slack, "chat.update")
    assert [p["markdown_text"] for p in updates] == ["One two", "One two three"]
    [message] = slack.posted("C111")
    assert message["text"] == "One two three"


async def test_text_that_no_longer_extends_the_stream_ends_it_and_edits(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    started = await adapter.start_stream(_asking(), Reply("A long previ…"), delivery_id="b-1")
    assert started is not None

    await adapter.stop_stream(started, "A long preview, cut")

    [stop] = _params(slack, "chat.stopStream")
    assert "markdown_text" not in stop  # nothing appended: it would repeat the ellipsis
    assert [p["markdown_text"] for p in _params(slack, "chat.update")] == ["A long preview, cut"]
    [message] = slack.posted("C111")
    assert (message["text"], message["streaming"]) == ("A long preview, cut", False)


async def test_appends_past_their_rate_tier_are_held_back_by_retry_after(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter(max_rate_limit_wait=0.0)
    slack.tier_limits["chat.appendStream"] = 2
    started = await adapter.start_stream(_asking(), Reply("a"), delivery_id="botkit-1")
    assert started is not None
    started = await adapter.append_stream(started, "a b")
    started = await adapter.append_stream(started, "a b c")

    with pytest.raises(RateLimitError) as raised:
        await adapter.append_stream(started, "a b c d")
    assert raised.value.retry_after is not None
    assert raised.value.retry_after >= 1


async def test_a_short_429_on_an_append_is_waited_out(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    started = await adapter.start_stream(_asking(), Reply("a"), delivery_id="botkit-1")
    assert started is not None
    slack.rate_limit("chat.appendStream", 0.1)

    await adapter.append_stream(started, "a b")

    assert len(slack.calls_to("chat.appendStream")) == 2
    assert slack.posted("C111")[0]["text"] == "a b"


async def test_closing_a_stream_left_open_lets_it_be_edited(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    writer = await start_adapter()
    started = await writer.start_stream(_asking(), Reply("half an"), delivery_id="botkit-1")
    assert started is not None
    assert started.message is not None
    # another process (the writer died) knows only the recorded message
    successor = await start_adapter()

    await successor.close_stream(started.message)
    await successor.close_stream(started.message)  # an ended stream is no error
    await successor.edit(started.message, "the **whole** answer")

    [message] = slack.posted("C111")
    assert (message["text"], message["streaming"]) == ("the **whole** answer", False)
    assert _params(slack, "chat.update")[0]["markdown_text"] == "the **whole** answer"


def _answers(slack: FakeSlack, method: str) -> list[dict[str, Any]]:
    """What the fake answered ``method`` (the errors it returned), from its call log."""
    return [a for m, a in slack.answers if m == method]


# --- inside a real Bot --------------------------------------------------------------------


def _bot(database_url: str, fake_openai: FakeOpenAI, adapter: SlackAdapter, **bot: Any) -> Any:
    return run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "web": {"enabled": False},
            "bot": {"stream": True, **bot},
        },
    ).bot


async def _mention(slack: FakeSlack) -> None:
    await slack.wait_connected()
    envelope = await slack.send_envelope(corpus("02-app_mention-channel-authed_users.json"))
    assert await slack.wait_ack(envelope) == {"envelope_id": envelope}


async def test_a_streamed_mention_is_one_native_stream_in_its_thread(
    database_url: str, fake_openai: FakeOpenAI, slack: FakeSlack
) -> None:
    words = ["Here ", "is ", "**bold** ", *[f"w{i} " for i in range(12)], "end."]
    fake_openai.script(stream(words, interval=0.1))
    adapter = SlackAdapter("slack", settings_for(slack, transport="socket"))

    async with _bot(database_url, fake_openai, adapter):
        await _mention(slack)
        await slack.wait_for(lambda: bool(slack.calls_to("chat.stopStream")))
        await asyncio.sleep(0.3)  # a second message would show up now

    [reply] = slack.posted()
    assert reply["text"] == "".join(words)  # Markdown as the model wrote it
    assert (reply["thread_ts"], reply["streaming"]) == (MENTION_TS, False)
    assert slack.calls_to("chat.appendStream")
    assert slack.calls_to("chat.postMessage") == slack.calls_to("chat.update") == []


async def test_where_slack_refuses_streams_the_answer_is_posted_and_edited(
    database_url: str, fake_openai: FakeOpenAI, slack: FakeSlack
) -> None:
    words = ["Here ", "is ", "**bold** ", *[f"w{i} " for i in range(12)], "end."]
    fake_openai.script(stream(words, interval=0.1))
    slack.fail("chat.startStream", "method_not_supported_for_channel_type")
    adapter = SlackAdapter("slack", settings_for(slack, transport="socket"))

    async with _bot(database_url, fake_openai, adapter):
        await _mention(slack)
        await slack.wait_for(lambda: "end." in str(slack.posted()[:1]))
        await asyncio.sleep(0.3)

    [reply] = slack.posted()
    assert reply["text"] == "".join(words).replace("**bold**", "*bold*")  # mrkdwn
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.calls_to("chat.update")
    assert slack.calls_to("chat.appendStream") == []


async def test_a_stream_cut_off_by_a_stop_is_finished_in_the_same_message_after_restart(
    database_url: str, fake_openai: FakeOpenAI, slack: FakeSlack
) -> None:
    fake_openai.default = echo(pad_words=20, interval=0.05, stall_after=6, stall_for=60)
    adapter = SlackAdapter("slack", settings_for(slack, transport="socket"))
    async with _bot(database_url, fake_openai, adapter, shutdown_grace=0.5):
        await _mention(slack)
        await slack.wait_for(lambda: bool(slack.calls_to("chat.startStream")))
    [cut] = slack.posted()
    fake_openai.default = echo(pad_words=20)

    adapter = SlackAdapter("slack", settings_for(slack, transport="socket"))
    async with _bot(database_url, fake_openai, adapter):
        await slack.wait_for(lambda: slack.posted()[0]["text"].endswith(" w19"))
        await asyncio.sleep(0.3)

    [reply] = slack.posted()
    assert reply["ts"] == cut["ts"]  # the same message, ended and edited
    assert reply["text"] == "echo: Hi there!" + "".join(f" w{i}" for i in range(20))
    assert reply["streaming"] is False
    assert len(slack.calls_to("chat.startStream")) == 1


async def _call(slack: FakeSlack, method: str, **params: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {slack.bot_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(slack.base_url + method, json=params, headers=headers) as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def test_the_fake_answers_stream_calls_as_slack_documents(slack: FakeSlack) -> None:
    thread = {"channel": "C111", "thread_ts": MENTION_TS}
    missing = await _call(slack, "chat.startStream", **thread, markdown_text="a")
    assert missing["error"] == "missing_recipient_team_id"
    recipients = {"recipient_team_id": "T111", "recipient_user_id": "W222"}
    started = await _call(slack, "chat.startStream", **thread, **recipients, markdown_text="a")
    ts = started["ts"]
    no_text = await _call(slack, "chat.appendStream", channel="C111", ts=ts)
    assert no_text["error"] == "markdown_text_required"
    too_long = await _call(
        slack, "chat.appendStream", channel="C111", ts=ts, markdown_text="x" * 12_001
    )
    assert too_long["error"] == "msg_too_long"
    assert (await _call(slack, "chat.stopStream", channel="C111", ts=ts))["ok"]
    late = await _call(slack, "chat.appendStream", channel="C111", ts=ts, markdown_text="b")
    assert late["error"] == "message_not_in_streaming_state"
    slack.add_message("C111", {"type": "message", "user": "W222", "text": "hi", "ts": "1.1"})
    theirs = await _call(slack, "chat.stopStream", channel="C111", ts="1.1")
    assert theirs["error"] == "message_not_owned_by_app"
    dm = await _call(slack, "chat.startStream", channel="D111", thread_ts="2.2", markdown_text="a")
    assert dm["ok"]  # no recipients needed in a DM
