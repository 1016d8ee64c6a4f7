"""``TelegramSettings``: the ``[adapters.telegram]`` table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from botkit import ConfigError, Secret

__all__ = ["TelegramSettings", "check_settings"]

_TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    """How the Telegram adapter connects and whom it answers.

    Attributes:
        token: the bot token from @BotFather, read from ``TELEGRAM_BOT_TOKEN`` (or the
            variable ``token_env`` names).
        api_url: the Bot API server's root, without ``/bot<token>``; a self-hosted Bot API
            server or a test server goes here.
        mode: ``"polling"`` (getUpdates, the default) or ``"webhook"``.
        webhook_url: the public HTTPS URL Telegram posts updates to (webhook mode).
        webhook_path: the path the adapter mounts on botkit's web server (webhook mode).
        webhook_secret: the ``secret_token`` Telegram sends back in the
            ``X-Telegram-Bot-Api-Secret-Token`` header, from ``TELEGRAM_WEBHOOK_SECRET``;
            when unset, one is derived from the bot token.
        allowed_users: user ids allowed to talk to the bot; with ``allowed_chats``, a message
            passes when its sender or its chat is listed. Both empty: everyone.
        allowed_chats: chat ids (groups are negative) the bot answers in.
        group_context: also accept group messages that do not address the bot, marked
            ``metadata["addressed"] = False`` so plugins can keep them as context.
        media_without_text: what to do with a sticker, photo or video that carries no
            text: ``"reply"`` answers it with ``unsupported_reply`` without bothering the
            core; ``"accept"`` hands it to the core with empty text, its attachments and
            ``metadata["unsupported"]`` naming the kind. A document, a voice note or an
            audio file always reaches the core, where a plugin may read it (the documents
            plugin summarises a document, the voice plugin transcribes a recording).
        unsupported_reply: the answer in ``"reply"`` mode.
        disable_link_previews: send replies without link previews.
        poll_timeout: seconds one getUpdates long poll may wait on the server.
        request_timeout: seconds to wait for any other Bot API call.
        max_flood_wait: the longest flood-control wait slept on inside a send; a longer
            one raises ``RateLimitError`` so the core reschedules the reply.
        backoff_initial: the first wait after a failed getUpdates, doubled up to
            ``backoff_max``.
        backoff_max: the longest wait between two failed getUpdates.
    """

    token: Secret = field(metadata={"env": "TELEGRAM_BOT_TOKEN"})
    api_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_path: str = "/telegram/webhook"
    webhook_secret: Secret | None = field(
        default=None, metadata={"env": "TELEGRAM_WEBHOOK_SECRET"}
    )
    allowed_users: tuple[int, ...] = ()
    allowed_chats: tuple[int, ...] = ()
    group_context: bool = False
    media_without_text: Literal["reply", "accept"] = "reply"
    unsupported_reply: str = "Sorry, I can only read text here."
    disable_link_previews: bool = True
    poll_timeout: int = 30
    request_timeout: float = 15.0
    max_flood_wait: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


def check_settings(name: str, settings: TelegramSettings) -> None:
    """Refuse settings that parse but cannot work together.

    Raises:
        ConfigError: naming ``adapters.NAME.key``; never quoting a secret.
    """
    prefix = f"adapters.{name}"
    if not _TOKEN_SHAPE.match(settings.token.reveal()):
        source = settings.token.source or "the token's environment variable"
        raise ConfigError(
            f"{prefix}.token", f"{source} does not hold a bot token like 123456:ABC-DEF..."
        )
    if not settings.api_url.startswith(("http://", "https://")):
        raise ConfigError(f"{prefix}.api_url", "must start with http:// or https://")
    if settings.mode == "webhook":
        if not settings.webhook_url:
            raise ConfigError(f"{prefix}.webhook_url", 'is required when mode = "webhook"')
        if not settings.webhook_url.startswith("https://"):
            raise ConfigError(f"{prefix}.webhook_url", "must be an https:// URL")
    if not settings.webhook_path.startswith("/"):
        raise ConfigError(f"{prefix}.webhook_path", "must start with /")
    if settings.webhook_secret and not _SECRET_SHAPE.match(settings.webhook_secret.reveal()):
        raise ConfigError(
            f"{prefix}.webhook_secret",
            "must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)",
        )
    if settings.poll_timeout < 0:
        raise ConfigError(f"{prefix}.poll_timeout", "must not be negative")
