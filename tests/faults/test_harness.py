"""The harness and the fakes' fault options do what the scenarios rely on (no process)."""

from __future__ import annotations

import asyncio
import time
import tomllib
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_server import FakeOpenAI, echo, hang, server_error
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI
from tests.faults.harness import toml, wait_until


def test_toml_writes_what_tomllib_reads_back() -> None:
    tables: dict[str, dict[str, Any]] = {
        "bot": {"name": 'a "quoted" name', "stream": False, "claim_lease": 2.5, "n": 3},
        "plugins.summary": {"digests": [{"name": "d", "to": {"channel": "slack"}}]},
    }

    parsed = tomllib.loads(toml(tables))

    assert parsed["bot"] == tables["bot"]
    assert parsed["plugins"]["summary"] == tables["plugins.summary"]


async def test_wait_until_explains_what_is_missing_when_it_times_out() -> None:
    with pytest.raises(AssertionError, match=r"pigs to fly\nunset"):
        await wait_until(lambda: False, within=0.1, what="pigs to fly", explain=lambda: "unset")


async def test_the_model_fake_default_answers_once_the_queue_is_empty() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as session:
        url = fake.url + "/chat/completions"
        fake.default = server_error()
        async with session.post(url, json=body) as failed:
            assert failed.status == 500
        fake.default = echo(pad_words=2)
        async with session.post(url, json=body) as padded:
            answer = await padded.json()
        assert answer["choices"][0]["message"]["content"] == "echo: hi w0 w1"
        fake.default = hang(0.3)
        started = time.monotonic()
        async with session.post(url, json=body) as late:
            assert (await late.json())["choices"][0]["message"]["content"] == "echo: hi"
        assert time.monotonic() - started >= 0.3


async def test_the_slack_fake_holds_an_answer_after_carrying_the_call_out() -> None:
    async with FakeSlack() as slack, aiohttp.ClientSession() as session:
        slack.hold("chat.postMessage", 30)
        post = asyncio.create_task(
            session.post(
                slack.base_url + "chat.postMessage",
                json={"channel": "D1", "text": "hello"},
                headers={"Authorization": f"Bearer {slack.bot_token}"},
            )
        )
        await wait_until(lambda: slack.holding == 1, within=5, what="the held call")

        assert [m["text"] for m in slack.posted("D1")] == ["hello"]
        assert not post.done()
        post.cancel()


async def test_the_telegram_fake_ends_an_overlapping_poll_with_409() -> None:
    async with FakeTelegramAPI(exclusive_polling=True) as api, aiohttp.ClientSession() as session:
        url = f"{api.api_url}/bot{TOKEN}/getUpdates"
        first = asyncio.create_task(session.post(url, json={"timeout": 5}))
        await wait_until(lambda: len(api.calls("getUpdates")) == 1, within=5, what="a poll")
        second = asyncio.create_task(session.post(url, json={"timeout": 0}))

        ended = await first
        assert ended.status == 409
        assert (await second).status == 200
        assert api.conflicts == 1
