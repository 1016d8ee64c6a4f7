"""The Slack adapter inside a real ``Bot``: real store, dispatcher, outbox and model client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from botkit import Bot
from botkit.testing import run_bot
from botkit_slack import SlackAdapter
from tests.adapters.slack.slack_helpers import corpus, settings_for, sign
from tests.fakes.openai_server import FakeOpenAI, completion, stream
from tests.fakes.slack_api import FakeSlack

MENTION_TS = "1595926230.009600"


async def _replies(slack: FakeSlack, count: int = 1) -> list[dict[str, Any]]:
    """Wait until the bot has posted ``count`` messages, then a little longer for extras."""
    await slack.wait_for(lambda: len(slack.posted()) >= count)
    await asyncio.sleep(0.3)  # a double reply would show up now
    return slack.posted()


def _bot(database_url: str, fake_openai: FakeOpenAI, adapter: SlackAdapter, **bot: Any) -> Bot:
    return run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "web": {"enabled": True, "host": "127.0.0.1", "port": 0},
            "bot": bot,
        },
    ).bot


async def _post_signed(url: str, body: dict[str, Any], **headers: str) -> int:
    raw = json.dumps(body).encode()
    ts = int(time.time())
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=raw,
            headers={
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": str(ts),
                "X-Slack-Signature": sign(raw, ts),
                **headers,
            },
        ) as response,
    ):
        return response.status


async def test_a_mention_delivered_three_times_over_http_is_answered_once_in_its_thread(
    database_url: str, fake_openai: FakeOpenAI, slack: FakeSlack
) -> None:
    fake_openai.script(completion("**Slack** launched in 2013 & is <fun>."))
    adapter = SlackAdapter("slack", settings_for(slack, transport="http"))
    mention = corpus("02-app_mention-channel-authed_users.json")
    message = corpus("02-app_mention-channel-authed_users.json")
    message["event"]["type"] = "message"
    message["event_id"] = "Ev112"

    async with _bot(database_url, fake_openai, adapter, stream=False) as bot:
        assert bot.web is not None
        url = f"http://127.0.0.1:{bot.web.port}/slack/events"
        statuses = [
            await _post_signed(url, mention),
            await _post_signed(url, message),
            await _post_signed(url, mention, **{"X-Slack-Retry-Num": "1"}),
        ]
        [reply] = await _replies(slack)

    assert statuses == [200, 200, 200]
    assert reply["thread_ts"] == MENTION_TS
    assert reply["text"] == "*Slack* launched in 2013 &amp; is &lt;fun&gt;."
    [request] = fake_openai.requests
    assert "Hi there!" in str(request.messages[-1]["content"])


async def test_a_streamed_dm_answer_over_socket_mode_is_posted_once_and_edited_in_place(
    database_url: str, fake_openai: FakeOpenAI, slack: FakeSlack
) -> None:
    # a DM's top level has no thread to stream natively into (test_slack_streams.py)
    answer = "Here is a longer answer, streamed word by word, with **bold** at the end."
    fake_openai.script(stream([f"{w} " for w in answer.split()], interval=0.1))
    adapter = SlackAdapter("slack", settings_for(slack, transport="socket"))
    dm = corpus("02-app_mention-channel-authed_users.json")
    dm["event"].update(type="message", channel="D111", channel_type="im", text="Hi there!")

    async with _bot(database_url, fake_openai, adapter, stream=True):
        await slack.wait_connected()
        envelope = await slack.send_envelope(dm)
        assert await slack.wait_ack(envelope) == {"envelope_id": envelope}
        await slack.wait_for(lambda: "end." in str(slack.posted()))
        [reply] = await _replies(slack)

    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.calls_to("chat.update")
    assert reply["text"].rstrip() == answer.replace("**bold**", "*bold*")
    assert "thread_ts" not in reply
    assert slack.calls_to("chat.startStream") == []
