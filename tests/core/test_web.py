"""The web server: health, readiness, metrics, and adapters' routes on one port."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from botkit import (
    ConfigError,
    Context,
    Inbox,
    Message,
    Plugin,
    WebhookGate,
    parse_json_object,
    read_webhook_body,
)
from botkit.config import parse_config
from botkit.testing import InMemoryChannel, run_bot

log = logging.getLogger("tests.webhook")


class WebhookAdapter(InMemoryChannel):
    """A channel that receives messages by webhook, the way botkit's adapters do."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = WebhookGate("test webhook")
        self.let_start = asyncio.Event()
        self.let_start.set()
        self.starting = asyncio.Event()
        self.calls: list[str] = []

    def web_routes(self) -> Sequence[web.RouteDef]:
        return [web.post("/hooks/test", self._hook)]

    async def start(self, inbox: Inbox) -> None:
        self.starting.set()
        await self.let_start.wait()
        await super().start(inbox)
        self.gate.open()

    async def stop_intake(self) -> None:
        self.calls.append("stop_intake")
        await self.gate.close()

    async def stop(self) -> None:
        self.calls.append("stop")
        await self.gate.close()
        await super().stop()

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await read_webhook_body(request, log, self.gate.what)
        body = parse_json_object(raw, request, log, self.gate.what)
        async with self.gate.admit(log):
            await self.receive(body["text"], external_id=body["id"])
        return web.json_response({"ok": True})


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_health_metrics_and_webhooks_share_one_server(database_url: str) -> None:
    adapter = WebhookAdapter()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"web": {"enabled": True, "port": 0}},
    ).bot
    async with bot, aiohttp.ClientSession() as http:
        assert bot.web is not None
        base = f"http://127.0.0.1:{bot.web.port}"
        assert await _get(http, f"{base}/healthz") == (200, {"status": "ok"})
        assert await _get(http, f"{base}/readyz") == (200, {"status": "ready"})
        for _ in range(2):  # the second delivery is a duplicate
            async with http.post(f"{base}/hooks/test", json={"text": "hi", "id": "w1"}) as r:
                assert r.status == 200
        await bot.dispatcher.idle()
        async with http.get(f"{base}/metrics") as response:
            metrics = await response.text()
    assert 'botkit_messages_in_total{channel="test"} 1.0' in metrics
    assert 'botkit_messages_duplicate_total{channel="test"} 1.0' in metrics
    assert 'botkit_messages_out_total{channel="test"} 1.0' in metrics
    assert "botkit_model_tokens_total" in metrics
    assert len(adapter.sent) == 1


async def test_while_adapters_start_healthz_is_ok_readyz_503_and_webhooks_wait(
    database_url: str,
) -> None:
    adapter = WebhookAdapter()
    adapter.let_start.clear()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"web": {"enabled": True, "port": 0}},
    ).bot
    starting = asyncio.create_task(bot.start())
    try:
        await adapter.starting.wait()
        assert bot.web is not None  # listening before the adapters start
        base = f"http://127.0.0.1:{bot.web.port}"
        async with aiohttp.ClientSession() as http:
            assert await _get(http, f"{base}/healthz") == (200, {"status": "ok"})
            assert await _get(http, f"{base}/readyz") == (
                503,
                {"status": "unavailable", "reason": "starting"},
            )
            early = asyncio.create_task(
                http.post(f"{base}/hooks/test", json={"text": "early", "id": "e1"})
            )
            await asyncio.sleep(0.2)
            assert not early.done()  # held: never processed before the adapter is ready
            adapter.let_start.set()
            await starting
            async with await early as response:
                assert response.status == 200
            assert await _get(http, f"{base}/readyz") == (200, {"status": "ready"})
        await bot.dispatcher.idle()
        [answer] = adapter.sent
        assert answer.text.endswith("You said: early")
    finally:
        adapter.let_start.set()
        await asyncio.gather(starting, return_exceptions=True)
        await bot.stop()


async def test_readyz_is_503_when_the_database_does_not_answer(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = run_bot(
        database_url=database_url,
        channels=[InMemoryChannel()],
        model="config",
        config={"web": {"enabled": True, "port": 0}},
    ).bot
    async with bot, aiohttp.ClientSession() as http:
        assert bot.web is not None
        base = f"http://127.0.0.1:{bot.web.port}"

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise OSError("connection refused")

        monkeypatch.setattr(bot.database, "read", down)
        assert await _get(http, f"{base}/readyz") == (
            503,
            {"status": "unavailable", "reason": "database unavailable"},
        )
        assert await _get(http, f"{base}/healthz") == (200, {"status": "ok"})
        monkeypatch.undo()


async def test_a_stopping_bot_is_not_ready_its_webhooks_answer_503_and_work_in_flight_finishes(
    database_url: str,
) -> None:
    plugin = Plugin("slow")
    release = asyncio.Event()
    started = asyncio.Event()

    @plugin.on_message()
    async def slow(message: Message, ctx: Context) -> str:
        started.set()
        await release.wait()
        return f"re {message.text}"

    adapter = WebhookAdapter()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"web": {"port": 0}},
    ).bot
    await bot.start()
    assert bot.web is not None
    base = f"http://127.0.0.1:{bot.web.port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/hooks/test", json={"text": "first", "id": "f1"}) as r:
            assert r.status == 200
        await started.wait()
        stopping = asyncio.create_task(bot.stop())
        await asyncio.sleep(0.1)
        assert adapter.calls == ["stop_intake"]  # intake first; the adapter stays up
        assert await _get(http, f"{base}/readyz") == (
            503,
            {"status": "unavailable", "reason": "draining"},
        )
        assert await _get(http, f"{base}/healthz") == (200, {"status": "ok"})
        async with http.post(f"{base}/hooks/test", json={"text": "later", "id": "l1"}) as r:
            assert r.status == 503
            assert r.headers["Retry-After"].isdigit()
        release.set()
        await stopping
    assert adapter.calls == ["stop_intake", "stop"]
    assert [s.text for s in adapter.sent] == ["re first"]  # sent before the adapter closed


async def test_web_max_body_size_bounds_every_webhook(database_url: str) -> None:
    adapter = WebhookAdapter()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"web": {"port": 0, "max_body_size": 2048}},
    ).bot
    async with bot, aiohttp.ClientSession() as http:
        assert bot.web is not None
        url = f"http://127.0.0.1:{bot.web.port}/hooks/test"
        big = io.BytesIO(b'{"text": "' + b"x" * 4096 + b'", "id": "b1"}')
        async with http.post(url, data=big) as response:
            assert response.status == 413
        async with http.post(url, data=b"\xff") as response:
            assert response.status == 400
    assert adapter.sent == []


def test_web_max_body_size_must_be_at_least_a_kibibyte() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"web": {"max_body_size": 10}}, environ={})
    assert raised.value.key == "web.max_body_size"


@pytest.mark.parametrize(
    ("head", "body"),
    [
        ("Transfer-Encoding: chunked", b"zz\r\nabc\r\n0\r\n\r\n"),
        ("Content-Length: abc", b"{}"),
        ("Content-Encoding: gzip\r\nContent-Length: 5", b"abcde"),
        ("Content-Encoding: deflate\r\nContent-Length: 5", b"abcde"),
    ],
    ids=["broken-chunks", "bad-content-length", "not-gzip", "not-deflate"],
)
async def test_a_request_aiohttp_cannot_parse_is_a_400_with_one_log_line(
    database_url: str, caplog: pytest.LogCaptureFixture, head: str, body: bytes
) -> None:
    adapter = WebhookAdapter()
    async with run_bot(
        database_url=database_url, channels=[adapter], model="config", config={"web": {"port": 0}}
    ).bot as bot:
        assert bot.web is not None
        caplog.clear()
        caplog.set_level(logging.DEBUG, logger="botkit.web.http")
        caplog.set_level(logging.INFO, logger="tests.webhook")
        reader, writer = await asyncio.open_connection("127.0.0.1", bot.web.port)
        writer.write(f"POST /hooks/test HTTP/1.1\r\nHost: bot\r\n{head}\r\n\r\n".encode() + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await asyncio.sleep(0.05)  # aiohttp logs after answering
    assert status_line.split()[1] == b"400"
    records = [r for r in caplog.records if r.name in ("botkit.web.http", "tests.webhook")]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None
    assert records[0].levelno == logging.WARNING
    assert adapter.sent == []
