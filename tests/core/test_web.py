"""The web server: health, metrics, and adapters' routes on one port."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from aiohttp import web

from tests.fakes.bots import make_bot
from tests.fakes.recording_adapter import RecordingAdapter


class WebhookAdapter(RecordingAdapter):
    """A channel that receives messages by webhook."""

    def web_routes(self) -> Sequence[web.RouteDef]:
        return [web.post("/hooks/test", self._hook)]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.say(body["text"], external_id=body["id"])
        return web.json_response({"ok": True})


async def test_health_metrics_and_webhooks_share_one_server(database_url: str) -> None:
    adapter = WebhookAdapter()
    bot = make_bot(database_url, {"test": adapter}, web={"enabled": True, "port": 0})
    async with bot, aiohttp.ClientSession() as http:
        assert bot.web is not None
        base = f"http://127.0.0.1:{bot.web.port}"
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
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
