"""Webhook mode: the secret token, malformed bodies, acknowledgement after accept, setWebhook."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from botkit import Accepted, ConfigError, Message, Secret
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


def one_log_line(caplog: pytest.LogCaptureFixture) -> str:
    """The one line botkit logged (aiohttp's access log is the test server's), no traceback."""
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None
    return records[0].getMessage()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"update_id": 1, "message": {"text": "caf\xe9"}}', "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b"[" * 50_000 + b"]" * 50_000, "not JSON"),
        (b'{"message": {}}', "not an update"),
        (b'{"update_id": "7"}', "not an update"),
        (b'{"update_id": true}', "not an update"),
    ],
)
async def test_malformed_body_is_a_400_with_one_log_line_and_nothing_processed(
    webhook: TestClient[Any, Any],
    inbox: RecordingInbox,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    status, text = await post(webhook, body)
    assert status == 400
    assert reason in text
    assert reason in one_log_line(caplog)
    assert inbox.attempts == 0


@pytest.mark.parametrize("body", [b"\xff\xfe", b"[1, 2]", b"{not json"])
async def test_malformed_body_with_a_wrong_secret_is_a_401_with_one_log_line(
    webhook: TestClient[Any, Any],
    inbox: RecordingInbox,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
) -> None:
    caplog.set_level(logging.INFO)
    status, _ = await post(webhook, body, secret="wrong")
    assert status == 401
    assert "secret token" in one_log_line(caplog)
    assert inbox.attempts == 0


async def test_a_body_over_the_limit_is_a_413_before_it_is_read(
    webhook: TestClient[Any, Any], inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    update = corpus("01-private-text")
    update["message"]["text"] = "x" * (1024 * 1024)
    raw = json.dumps(update).encode()
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # chunked: no Content-Length to go by
        nonlocal sent
        while sent < 64 * 1024 * 1024:
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    headers = {"Content-Type": "application/json", HEADER: SECRET}
    async with webhook.post("/telegram/webhook", data=io.BytesIO(raw), headers=headers) as r:
        assert r.status == 413
    assert "over 1048576 bytes" in one_log_line(caplog)
    caplog.clear()
    async with webhook.post("/telegram/webhook", data=endless(), headers=headers) as r:
        assert r.status == 413
    assert "over 1048576 bytes" in one_log_line(caplog)
    assert sent < 8 * 1024 * 1024
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
        assert (await post(client, corpus("01-private-text")))[0] == 503  # after a short wait
        await adapter.start(inbox)
        assert (await post(client, corpus("01-private-text")))[0] == 200
        await adapter.stop()
        async with client.post(
            "/telegram/webhook",
            json=corpus("02-start-command-private-official-docs"),
            headers={HEADER: SECRET},
        ) as response:
            assert response.status == 503
            assert response.headers["Retry-After"].isdigit()
    assert len(inbox.accepted) == 1


async def test_a_wrong_secret_is_401_before_start_while_running_draining_and_stopped(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter(start=False, **webhook_settings())
    app = web.Application()
    app.add_routes(adapter.web_routes())
    statuses = []
    async with TestClient(TestServer(app)) as client:
        statuses.append((await post(client, corpus("01-private-text"), secret="wrong"))[0])
        await adapter.start(inbox)
        statuses.append((await post(client, corpus("01-private-text"), secret="wrong"))[0])
        await adapter.stop_intake()
        statuses.append((await post(client, corpus("01-private-text"), secret=None))[0])
        await adapter.stop()
        statuses.append((await post(client, corpus("01-private-text"), secret="wrong"))[0])
    assert statuses == [401, 401, 401, 401]
    assert inbox.attempts == 0


async def test_an_update_that_comes_while_the_adapter_starts_waits_and_is_accepted(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter(start=False, **webhook_settings())
    app = web.Application()
    app.add_routes(adapter.web_routes())
    async with TestClient(TestServer(app)) as client:
        early = asyncio.create_task(post(client, corpus("01-private-text")))
        await asyncio.sleep(0.2)
        assert not early.done()
        assert inbox.attempts == 0  # not processed before the adapter is ready
        await adapter.start(inbox)
        assert (await early)[0] == 200
    assert len(inbox.accepted) == 1


async def test_stop_intake_lets_the_update_in_flight_finish_and_answers_later_ones_503(
    inbox: RecordingInbox,
    make_adapter: AdapterFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    accept = inbox.accept

    async def slow_accept(message: Message, *, skip: str | None = None) -> Accepted:
        entered.set()
        await release.wait()
        return await accept(message, skip=skip)

    monkeypatch.setattr(inbox, "accept", slow_accept)
    adapter = await make_adapter(**webhook_settings())
    app = web.Application()
    app.add_routes(adapter.web_routes())
    async with TestClient(TestServer(app)) as client:
        in_flight = asyncio.create_task(post(client, corpus("01-private-text")))
        await entered.wait()
        stopping = asyncio.create_task(adapter.stop_intake())
        await asyncio.sleep(0.1)
        assert not stopping.done()
        async with client.post(
            "/telegram/webhook",
            json=corpus("02-start-command-private-official-docs"),
            headers={HEADER: SECRET},
        ) as later:
            assert later.status == 503
            assert later.headers["Retry-After"].isdigit()
        release.set()
        await stopping
        assert (await in_flight)[0] == 200
    assert [m.text for m in inbox.accepted] == ["Hi, world!"]


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
