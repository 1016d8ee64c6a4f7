"""Delivering messages to bots the way Slack's Events API and Telegram's webhook do:
signed, and sent again until a bot acknowledges them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from tests.faults._process import BotProcess

__all__ = ["BOT_USER", "SIGNING_SECRET", "TELEGRAM_SECRET", "SlackEvents", "TelegramWebhook"]

SIGNING_SECRET = "faults-signing-secret-0123456789"
TELEGRAM_SECRET = "faults-webhook-secret"
BOT_USER = "W222"  # the person talking to the bot in every Slack scenario


class SlackEvents:
    """Delivers Events API messages to bots the way Slack does: signed, and redelivered
    (``X-Slack-Retry-Num``) when a bot does not answer 2xx in time."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = 3.0) -> None:
        self._session = session
        self._timeout = timeout
        self._ts = 0
        self._turn = 0
        #: every delivery attempt made: (bot name, ts, status or None for no answer)
        self.deliveries: list[tuple[str, str, int | None]] = []

    def next_ts(self) -> str:
        """A fresh Slack message timestamp."""
        self._ts += 1
        return f"1700001000.{self._ts:06d}"

    @staticmethod
    def body(
        channel: str,
        text: str,
        ts: str,
        *,
        event_id: str | None = None,
        thread_ts: str | None = None,
    ) -> bytes:
        """An ``event_callback`` body for a direct message from :data:`BOT_USER` (in the
        DM's thread ``thread_ts``, if given)."""
        event = {
            "type": "message",
            "channel": channel,
            "channel_type": "im",
            "user": BOT_USER,
            "text": text,
            "ts": ts,
            "event_ts": ts,
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return json.dumps(
            {
                "token": "verification-token",
                "team_id": "T111",
                "api_app_id": "A111",
                "event": event,
                "type": "event_callback",
                "event_id": event_id or f"Ev{ts.replace('.', '')}",
                "event_time": int(float(ts)),
                "authorizations": [{"team_id": "T111", "user_id": "W111", "is_bot": True}],
            }
        ).encode()

    @staticmethod
    def headers(raw: bytes, *, secret: str = SIGNING_SECRET, retry: int = 0) -> dict[str, str]:
        """Slack's headers for ``raw``: content type, timestamp, signature, retry number."""
        stamp = str(int(time.time()))
        base = b"v0:" + stamp.encode() + b":" + raw
        signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }
        if retry:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return headers

    async def post_raw(
        self, bot: BotProcess, raw: bytes, headers: Mapping[str, str], path: str = "/slack/events"
    ) -> int | None:
        """POST bytes as they are; the status, or ``None`` if the bot did not answer."""
        try:
            async with self._session.post(
                bot.url + path,
                data=io.BytesIO(raw),
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def post(
        self,
        bots: BotProcess | Sequence[BotProcess],
        channel: str,
        text: str,
        ts: str | None = None,
        *,
        first: int | None = None,
        deadline: float = 60.0,
        thread_ts: str | None = None,
    ) -> str:
        """Deliver one message until a bot acknowledges it with 2xx; its ``ts``.

        Like Slack, a delivery that fails (no answer in time, a 5xx, a refused connection)
        is retried with ``X-Slack-Retry-Num``. With several bots the deliveries go round
        robin, as behind a load balancer (``first`` picks the bot of the first try), and
        each retry goes to the next bot.
        """
        pool = [bots] if isinstance(bots, BotProcess) else list(bots)
        ts = ts or self.next_ts()
        raw = self.body(channel, text, ts, thread_ts=thread_ts)
        give_up = time.monotonic() + deadline
        if first is None:
            first, self._turn = self._turn, self._turn + 1
        attempt = 0
        while True:
            bot = pool[(first + attempt) % len(pool)]
            status = await self.post_raw(bot, raw, self.headers(raw, retry=attempt))
            self.deliveries.append((bot.name, ts, status))
            if status is not None and 200 <= status < 300:
                return ts
            if status is not None and 400 <= status < 500:
                raise AssertionError(f"{bot.name} refused {text!r} with {status}")
            attempt += 1
            if time.monotonic() > give_up:
                raise AssertionError(f"no bot acknowledged {text!r} within {deadline:g} s")
            await asyncio.sleep(0.2)


class TelegramWebhook:
    """Delivers updates to bots' Telegram webhooks the way Telegram does, resending an
    update until a bot answers 2xx."""

    def __init__(self, session: aiohttp.ClientSession, *, path: str = "/telegram/webhook") -> None:
        self._session = session
        self._path = path
        self._update_id = 0

    def update(self, chat_id: int, text: str, *, update_id: int | None = None) -> dict[str, Any]:
        """A private-chat text message update."""
        if update_id is None:
            self._update_id += 1
            update_id = self._update_id
        return {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
                "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
                "date": int(time.time()),
                "text": text,
            },
        }

    async def post_raw(
        self, bot: BotProcess, raw: bytes, *, secret: str | None = TELEGRAM_SECRET
    ) -> int | None:
        """POST bytes to the webhook; the status, or ``None`` without an answer."""
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        try:
            async with self._session.post(
                bot.url + self._path,
                data=io.BytesIO(raw),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def post(self, bot: BotProcess, update: Mapping[str, Any], *, times: int = 1) -> None:
        """Deliver ``update`` until acknowledged, then ``times - 1`` more times (redelivery)."""
        raw = json.dumps(update).encode()
        delivered = 0
        give_up = time.monotonic() + 60
        while delivered < times:
            status = await self.post_raw(bot, raw)
            if status == 200:
                delivered += 1
                continue
            if status is not None and 400 <= status < 500:
                raise AssertionError(f"{bot.name} refused update {update['update_id']}: {status}")
            if time.monotonic() > give_up:
                raise AssertionError(f"update {update['update_id']} never acknowledged")
            await asyncio.sleep(0.2)
