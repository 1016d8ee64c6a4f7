"""Webhook mode: the secret token, malformed bodies, acknowledgement after accept, setWebhook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from botkit import ConfigError, Secret
from botkit_telegram import TelegramAdapter
from tests.adapters.telegram.conftest import AdapterFactory
from tests.adapters.telegram.support import RecordingInbox, corpus, make_settings
from tests.fakes.telegram_api import FakeTelegramAPI

SECRET = "s3cret-Token_value"
HOOK = "https://bot.example.com/telegram/webhook"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_settings() -> dict[str, Any]:
    return {
        "mode": "webhook",
        "webhook_url": HOOK,
        "webhook_secret": Secret(SECRET, source="TELEGRAM_WEBHOOK_SECRET"),
    }


@pytest.fixture
async def webhook(make_adapter: AdapterFactory) -> AsyncIterator[TestClient[Any, Any]]:
    """A started webhook-mode adapter mounted on an aiohttp app, as botkit's server does."""
    adapter = await make_adapter(**webhook_settings())
    app = web.Application()
    app.add_routes(adapter.web_routes())
    async with TestClient(TestServer(app)) as client:
        yield client


async def post(
    client: TestClient[Any, Any], body: Any, secret: str | None = SECRET
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[HEADER] = secret
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with client.post("/telegram/webhook", data=data, headers=headers) as response:
        return response.status, await response.text()


async def test_update_with_the_right_secret_is_accepted(
    webhook: TestClient[Any, Any], inbox: RecordingInbox
) -> None:
    status, _ = await post(webhook, corpus("90-DERIVED-supergroup-mention-of-bot"))
    assert status == 200
    assert [m.text for m in inbox.accepted] == ["what is on the agenda today?"]


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper()])
async def test_wrong_or_missing_secret_is_refused_and_nothing_processed(
    webhook: TestClient[Any, Any], inbox: RecordingInbox, secret: str | None
) -> None:
    status, _ = await post(webhook, corpus("01-private-text"), secret=secret)
    assert status == 401
    assert inbox.attempts == 0


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"', b'{"message": {}}'],
)
async def test_malformed_body_is_a_400_and_nothing_processed(
    webhook: TestClient[Any, Any], inbox: RecordingInbox, body: bytes
) -> None:
    status, _ = await post(webhook, body)
    assert status == 400
    assert inbox.attempts == 0


async def test_repeated_delivery_is_acknowledged_and_accepted_once(
    webhook: TestClient[Any, Any], inbox: RecordingInbox
) -> None:
    update = corpus("01-private-text")
    assert (await post(webhook, update))[0] == 200
    assert (await post(webhook, update))[0] == 200
    assert len(inbox.accepted) == 1
    assert len(inbox.duplicates) == 1


async def test_inbox_failure_answers_500_so_telegram_resends(
    webhook: TestClient[Any, Any], inbox: RecordingInbox
) -> None:
    inbox.failures_left = 1
    update = corpus("01-private-text")
    assert (await post(webhook, update))[0] == 500
    assert (await post(webhook, update))[0] == 200
    assert len(inbox.accepted) == 1


async def test_ignored_update_is_acknowledged(
    webhook: TestClient[Any, Any], inbox: RecordingInbox
) -> None:
    update = corpus("01-private-text")
    update["edited_message"] = update.pop("message")
    assert (await post(webhook, update))[0] == 200
    assert inbox.attempts == 0


async def test_set_webhook_is_called_once_with_the_secret(
    api: FakeTelegramAPI, webhook: TestClient[Any, Any]
) -> None:
    (call,) = api.calls("setWebhook")
    assert call.params["url"] == HOOK
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message"]
    assert api.calls("getUpdates") == []


async def test_set_webhook_is_skipped_when_telegram_already_has_it(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    first = await make_adapter(**webhook_settings())
    await first.stop()
    await make_adapter(**webhook_settings())
    assert len(api.calls("getWebhookInfo")) == 2
    assert len(api.calls("setWebhook")) == 1


async def test_set_webhook_is_called_again_when_the_secret_changed(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    first = await make_adapter(**webhook_settings())
    await first.stop()
    changed = {**webhook_settings(), "webhook_secret": Secret("another-secret")}
    await make_adapter(**changed)
    assert [c.params["secret_token"] for c in api.calls("setWebhook")] == [
        SECRET,
        "another-secret",
    ]


async def test_set_webhook_is_called_again_when_the_url_differs(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    first = await make_adapter(**webhook_settings())
    await first.stop()
    api.webhook["url"] = "https://someone-else.example.com/hook"
    await make_adapter(**webhook_settings())
    assert len(api.calls("setWebhook")) == 2
    assert api.webhook["url"] == HOOK


async def test_without_a_configured_secret_one_is_derived_from_the_token(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    settings = {**webhook_settings(), "webhook_secret": None}
    adapter = await make_adapter(**settings)
    derived = api.calls("setWebhook")[0].params["secret_token"]
    assert len(derived) == 64
    assert api.token not in derived
    app = web.Application()
    app.add_routes(adapter.web_routes())
    async with TestClient(TestServer(app)) as client:
        assert (await post(client, corpus("01-private-text"), secret=None))[0] == 401
        assert (await post(client, corpus("01-private-text"), secret=derived))[0] == 200


async def test_webhook_refuses_posts_before_start_and_after_stop(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter(start=False, **webhook_settings())
    app = web.Application()
    app.add_routes(adapter.web_routes())
    async with TestClient(TestServer(app)) as client:
        assert (await post(client, corpus("01-private-text")))[0] == 503
        await adapter.start(inbox)
        assert (await post(client, corpus("01-private-text")))[0] == 200
        await adapter.stop()
        assert (await post(client, corpus("02-start-command-private-official-docs")))[0] == 503
    assert len(inbox.accepted) == 1


def test_polling_mode_mounts_no_routes(api: FakeTelegramAPI) -> None:
    assert TelegramAdapter("telegram", make_settings(api)).web_routes() == ()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"mode": "webhook"}, "adapters.tg.webhook_url"),
        (
            {"mode": "webhook", "webhook_url": "http://plain.example.com"},
            "adapters.tg.webhook_url",
        ),
        ({"webhook_secret": Secret("has spaces")}, "adapters.tg.webhook_secret"),
        ({"webhook_path": "no-slash"}, "adapters.tg.webhook_path"),
        ({"api_url": "api.telegram.org"}, "adapters.tg.api_url"),
        ({"token": Secret("not a token", source="TELEGRAM_BOT_TOKEN")}, "adapters.tg.token"),
    ],
)
def test_inconsistent_settings_fail_at_construction_naming_the_key(
    api: FakeTelegramAPI, overrides: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        TelegramAdapter("tg", make_settings(api, **overrides))
    assert raised.value.key == key
    assert "not a token" not in str(raised.value)
