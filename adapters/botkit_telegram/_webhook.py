"""Webhook mode: the route Telegram posts updates to, and keeping ``setWebhook`` current."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from botkit import (
    KeyValueState,
    Secret,
    WebhookGate,
    parse_json_object,
    read_webhook_body,
    refuse_request,
)
from botkit_telegram._polling import ALLOWED_UPDATES
from botkit_telegram._request import RawBot

__all__ = ["SECRET_HEADER", "WebhookReceiver", "derive_secret", "ensure_webhook"]

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def derive_secret(token: Secret) -> str:
    """A stable webhook secret for a bot token, when none is configured.

    Only someone holding the token can compute it, and they could already call
    ``setWebhook`` themselves; it is 64 hex digits, within Telegram's 1-256 ``[A-Za-z0-9_-]``.
    """
    return hmac.new(
        token.reveal().encode(), b"botkit telegram webhook secret", hashlib.sha256
    ).hexdigest()


async def ensure_webhook(bot: RawBot, state: KeyValueState, *, url: str, secret: str) -> bool:
    """Call ``setWebhook`` only when Telegram's webhook differs from the configured one.

    ``getWebhookInfo`` reports the URL and update kinds but never the secret, so a hash of
    the last URL and secret set is kept in the adapter's state to notice a changed secret.

    Returns:
        True when ``setWebhook`` was called.
    """
    fingerprint = hashlib.sha256(f"{url}\n{secret}".encode()).hexdigest()
    info = await bot.get_webhook_info()
    same_updates = sorted(info.allowed_updates or ()) == sorted(ALLOWED_UPDATES)
    if info.url == url and same_updates and await state.get("webhook") == fingerprint:
        log.debug("the Telegram webhook is already set as configured")
        return False
    await bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
    await state.set("webhook", fingerprint)
    log.info("Telegram webhook set to %s", url)
    return True


class WebhookReceiver:
    """The aiohttp handler for Telegram's webhook posts.

    In this order (see :mod:`botkit.webhooks`): 401 to a missing or wrong
    ``X-Telegram-Bot-Api-Secret-Token``, whatever the adapter's state; 413 to a body over
    ``web.max_body_size``; 400 to a body that is not a Telegram update; 503 with
    ``Retry-After`` while the adapter is not taking updates (a request that comes while it
    starts waits briefly for it); 500 when the inbox failed, so Telegram delivers the
    update again; else 200 once accepted. Each refusal is one log line.

    Args:
        secret: the secret Telegram must send back.
        handle: processes one update; raising means "not accepted".
    """

    def __init__(self, secret: str, handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.secret = secret
        self._expected = secret.encode()
        self._handle = handle
        self.gate = WebhookGate("telegram webhook")

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one POST from Telegram."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._expected):
            log.warning(
                "refused a Telegram webhook request from %s: %s secret token",
                request.remote,
                "wrong" if given else "no",
            )
            return web.Response(status=401, text="wrong secret token")
        raw = await read_webhook_body(request, log, self.gate.what)
        update = parse_json_object(raw, request, log, self.gate.what)
        update_id = update.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise refuse_request(
                log, request, self.gate.what, web.HTTPBadRequest, "the body is not an update"
            )
        async with self.gate.admit(log):
            try:
                await self._handle(update)
            except Exception as exc:
                log.warning(
                    "webhook update %d was not accepted (%s: %s); Telegram will resend it",
                    update_id,
                    type(exc).__name__,
                    exc,
                )
                return web.Response(status=500, text="not accepted")
        return web.Response(status=200)
