"""Helpers for the Slack adapter tests: corpus bodies, signatures, settings, events."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from botkit import Secret
from botkit_slack import SlackAdapter, SlackSettings
from tests.fakes.slack_api import FakeSlack

CORPUS = Path(__file__).parent / "corpus"
SIGNING_SECRET = "8f742231b10e8888abc3sign1ng5ecret"
EVENTS_PATH = "/slack/events"


def corpus(name: str) -> dict[str, Any]:
    """A real event body from ``corpus/``, as a fresh dict."""
    body: dict[str, Any] = json.loads((CORPUS / name).read_text())
    return copy.deepcopy(body)


def sign(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """Slack's ``X-Slack-Signature`` for these exact bytes."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def settings_for(slack: FakeSlack, **overrides: Any) -> SlackSettings:
    """Settings pointing at the fake, secrets as the config would resolve them."""
    settings = SlackSettings(
        bot_token=Secret(slack.bot_token, source="SLACK_BOT_TOKEN"),
        app_token=Secret(slack.app_token, source="SLACK_APP_TOKEN"),
        signing_secret=Secret(SIGNING_SECRET, source="SLACK_SIGNING_SECRET"),
        api_url=slack.base_url,
        post_interval=0.0,
    )
    return replace(settings, **overrides)


def event(
    kind: str = "message",
    *,
    text: str = "hello",
    user: str | None = "W222",
    channel: str = "C111",
    ts: str = "1700000100.000100",
    event_id: str = "Ev100",
    **fields: Any,
) -> dict[str, Any]:
    """An ``event_callback`` body around one event, shaped like the corpus."""
    inner: dict[str, Any] = {"type": kind, "text": text, "ts": ts, "channel": channel}
    if user is not None:
        inner["user"] = user
    if kind == "message" and "channel_type" not in fields:
        inner["channel_type"] = "im" if channel.startswith("D") else "channel"
    inner["event_ts"] = ts
    inner.update(fields)
    return {
        "token": "verification-token",
        "team_id": "T111",
        "api_app_id": "A111",
        "event": inner,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1700000100,
        "authorizations": [{"team_id": "T111", "user_id": "W111", "is_bot": True}],
    }


class SignedPoster:
    """Posts bodies to the adapter's events endpoint, signed like Slack signs them."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    async def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        headers: dict[str, str] | None = None,
        form: bool = False,
    ) -> ClientResponse:
        """POST ``body`` (JSON, or form-encoded like slash commands) with a signature."""
        if isinstance(body, bytes):
            raw = body
        elif form:
            raw = urlencode(body).encode()
        else:
            raw = json.dumps(body).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        sent_headers = {
            "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(raw, ts, secret),
            **(headers or {}),
        }
        return await self.client.post(EVENTS_PATH, data=raw, headers=sent_headers)


StartAdapter = Callable[..., Awaitable[SlackAdapter]]
HttpEvents = Callable[..., Awaitable[tuple[SlackAdapter, SignedPoster]]]
