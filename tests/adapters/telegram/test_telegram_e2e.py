"""The Telegram adapter inside a real ``Bot``: config parsing, store, dispatcher, outbox, model."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import aiohttp

from botkit import Bot
from botkit.config import parse_config
from botkit_telegram import TelegramAdapter
from tests.adapters.telegram.support import corpus, eventually
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI

GROUP = -1001417735217
ENVIRON = {"TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-test-key-0123456789"}


def config(
    tmp_path: Path,
    api: FakeTelegramAPI,
    fake_openai: FakeOpenAI,
    *,
    stream: bool,
    web: bool = False,
    environ: dict[str, str] = ENVIRON,
    **telegram: Any,
) -> Any:
    return parse_config(
        {
            "bot": {"stream": stream, "shutdown_grace": 5.0},
            "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "web": {"enabled": web, "port": 0},
            "adapters": {
                "telegram": {
                    # the entry point exists in pyproject; ``use`` also works on an
                    # editable install made before the package was added
                    "use": "botkit_telegram:TelegramAdapter",
                    "api_url": api.api_url,
                    "poll_timeout": 1,
                    **telegram,
                }
            },
        },
        environ=environ,
    )


async def test_group_mention_is_answered_once_as_a_quoted_formatted_reply(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(completion("**Standup** at 10 & retro at 4."))
    update = corpus("90-DERIVED-supergroup-mention-of-bot")
    async with Bot(config(tmp_path, api, fake_openai, stream=False)) as bot:
        assert isinstance(bot.adapters["telegram"], TelegramAdapter)
        await api.push_update(update)
        await eventually(lambda: len(api.sent) == 1, within=10)
        # Telegram sends the same update again (the offset was never confirmed)
        await api.push_update(copy.deepcopy(update))
        await eventually(lambda: api.confirmed_offset > update["update_id"], within=5)
        await asyncio.sleep(0.3)
    (reply,) = api.sent
    assert reply.chat_id == GROUP
    assert reply.reply_to == 16
    assert reply.parse_mode is None
    assert reply.text == "Standup at 10 & retro at 4."
    assert reply.spans() == [("bold", "Standup")]
    assert len(fake_openai.requests) == 1
    user_turn = fake_openai.requests[0].messages[-1]
    assert user_turn["role"] == "user"
    assert "what is on the agenda today?" in user_turn["content"]
    assert "@opsdroid_bot" not in user_turn["content"]
    published = [c["command"] for c in api.commands]
    assert {"start", "help", "reset"} <= set(published)


async def test_streamed_private_answer_arrives_as_one_formatted_message(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(completion("Hello **there**, " + "word " * 30))
    async with Bot(config(tmp_path, api, fake_openai, stream=True)):
        await api.push_update(corpus("01-private-text"))
        await eventually(lambda: bool(api.sent) and "word" in api.sent[0].text, within=10)
        await eventually(lambda: api.sent[0].text.rstrip().endswith("word"), within=10)
    (reply,) = api.sent
    assert reply.chat_id == 12345678
    assert reply.text.startswith("Hello there, word")
    assert reply.spans() == [("bold", "there")]
    assert not reply.edits  # it grew as a draft (test_telegram_drafts.py)
    assert api.chat_actions  # typing... while the model thought


async def test_webhook_on_the_bots_web_server_refuses_a_wrong_secret(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(completion("Hi!"))
    settings = {
        "mode": "webhook",
        "webhook_url": "https://bot.example.com/tg",
        "webhook_path": "/tg",
    }
    environ = {**ENVIRON, "TELEGRAM_WEBHOOK_SECRET": "hook-secret"}
    cfg = config(tmp_path, api, fake_openai, stream=False, web=True, environ=environ, **settings)
    async with Bot(cfg) as bot, aiohttp.ClientSession() as http:
        assert bot.web is not None
        url = f"http://127.0.0.1:{bot.web.port}/tg"
        body = corpus("02-start-command-private-official-docs")
        header = "X-Telegram-Bot-Api-Secret-Token"
        async with http.post(url, json=body, headers={header: "wrong"}) as refused:
            assert refused.status == 401
        async with http.post(url, json=body, headers={header: "hook-secret"}) as ok:
            assert ok.status == 200
        await eventually(lambda: len(api.sent) == 1, within=10)
    assert api.calls("setWebhook")[0].params["secret_token"] == "hook-secret"
    # /start is answered by the core's chat plugin, not the model
    assert "Hello" in api.sent[0].text
    assert fake_openai.requests == []
