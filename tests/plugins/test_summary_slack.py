"""The Slack channel summary: ``SlackAdapter.history`` and ``/summary 6h`` over Slack."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import aiohttp
import pytest

from botkit import ConversationRef, RequestRejectedError
from botkit.testing import FakeModel, run_bot
from botkit_slack import SlackAdapter
from botkit_summary import plugin as summary
from tests.adapters.slack.recording_inbox import RecordingInbox
from tests.adapters.slack.slack_helpers import settings_for, sign
from tests.fakes.slack_api import FakeSlack, Scripted

NOW = time.time()


def _ts(minutes_ago: float, n: int = 0) -> str:
    return f"{NOW - minutes_ago * 60:.0f}.{n:06d}"


PAGE_1 = {  # newest first, as Slack sends them
    "ok": True,
    "messages": [
        {
            "type": "message",
            "user": "W111",
            "bot_id": "B111",
            "text": "Deploy looks good.",
            "ts": _ts(5),
        },
        {
            "type": "message",
            "subtype": "channel_join",
            "user": "W333",
            "text": "joined",
            "ts": _ts(10),
        },
        {
            "type": "message",
            "user": "W222",
            "text": "<@W111> did the deploy finish?",
            "ts": _ts(20),
        },
    ],
    "has_more": True,
    "response_metadata": {"next_cursor": "page-2"},
}
PAGE_2 = {
    "ok": True,
    "messages": [
        {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B999",
            "username": "deploybot",
            "text": "Deploy *started*",
            "ts": _ts(30),
        }
    ],
    "has_more": False,
}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_user("W222", "Ada Lovelace")
        yield fake


async def test_history_reads_every_page_oldest_first_and_skips_non_messages(
    slack: FakeSlack,
) -> None:
    slack.script("conversations.history", Scripted(body=PAGE_1), Scripted(body=PAGE_2))
    adapter = SlackAdapter("slack", settings_for(slack, transport="http"))
    await adapter.start(RecordingInbox())
    try:
        since = datetime.now(UTC) - timedelta(hours=6)
        messages = await adapter.history(ConversationRef("slack", "C111"), since=since)
    finally:
        await adapter.stop()
    assert [(m.sender.display_name, m.text) for m in messages] == [
        ("deploybot", "Deploy *started*"),
        ("Ada Lovelace", "did the deploy finish?"),
        ("assistant", "Deploy looks good."),
    ]
    assert messages[0].sender.is_bot
    assert messages[0].external_id == f"C111:{_ts(30)}"
    first, second = slack.calls_to("conversations.history")
    assert first.params["channel"] == "C111"
    assert float(first.params["oldest"]) == pytest.approx(since.timestamp(), abs=0.001)
    assert second.params["cursor"] == "page-2"


async def test_history_refused_by_slack_is_a_typed_error(slack: FakeSlack) -> None:
    slack.fail("conversations.history", "not_in_channel")
    adapter = SlackAdapter("slack", settings_for(slack, transport="http"))
    await adapter.start(RecordingInbox())
    try:
        with pytest.raises(RequestRejectedError) as caught:
            await adapter.history(ConversationRef("slack", "C111"), since=datetime.now(UTC))
    finally:
        await adapter.stop()
    assert caught.value.code == "not_in_channel"


async def test_summary_of_the_last_hours_of_a_slack_channel(
    database_url: str, slack: FakeSlack
) -> None:
    slack.script("conversations.history", Scripted(body=PAGE_1), Scripted(body=PAGE_2))
    model = FakeModel().reply("The deploy finished and looks good.", purpose="summary")
    adapter = SlackAdapter("slack", settings_for(slack, transport="http"))
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[summary],
        model=model,
        config={"web": {"enabled": True, "host": "127.0.0.1", "port": 0}},
    ).bot
    command = {
        "command": "/botkit",
        "text": "summary 6h",
        "user_id": "W222",
        "channel_id": "C111",
        "channel_name": "general",
        "trigger_id": "t-1",
    }
    async with bot:
        assert bot.web is not None
        raw = urlencode(command).encode()
        stamp = int(time.time())
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{bot.web.port}/slack/events",
                data=raw,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": str(stamp),
                    "X-Slack-Signature": sign(raw, stamp),
                },
            ) as response,
        ):
            assert response.status == 200
        await bot.dispatcher.idle()  # answered and delivered before the bot stops
    [posted] = slack.posted("C111")
    assert posted["text"] == "Summary of the last 6 hours:\n\nThe deploy finished and looks good."
    [request] = model.requests
    assert request.messages[1]["content"] == (
        "deploybot: Deploy *started*\nAda Lovelace: did the deploy finish?\n"
        "assistant: Deploy looks good."
    )
