"""The one place python-telegram-bot's errors become botkit's."""

from __future__ import annotations

from telegram import error as tg

from botkit import (
    AuthenticationError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
)

__all__ = ["is_entity_error", "is_not_modified", "retry_after_seconds", "service_error"]

SERVICE = "telegram"


def retry_after_seconds(exc: tg.RetryAfter) -> float:
    """The flood-control wait Telegram asked for, in seconds."""
    # ``exc.retry_after`` warns (PTB 22.2 deprecates its int form); the pickling tuple
    # carries the same whole seconds without a warning.
    _cls, (seconds,) = exc.__reduce__()
    return float(seconds)


def service_error(exc: tg.TelegramError, doing: str) -> ServiceError:
    """The botkit error for a failed Bot API call; raise it ``from exc``.

    Args:
        exc: what python-telegram-bot raised.
        doing: the call that failed, for the message (``"sendMessage"``).
    """
    text = f"{doing} failed: {exc.message}"
    if isinstance(exc, tg.RetryAfter):
        wait = retry_after_seconds(exc)
        return RateLimitError(
            SERVICE, f"{doing}: flood control, retry in {wait:g} s", retry_after=wait
        )
    if isinstance(exc, tg.InvalidToken):
        return AuthenticationError(SERVICE, f"{doing}: the bot token was refused", status=401)
    if isinstance(exc, tg.Forbidden):
        return RequestRejectedError(SERVICE, text, status=403, code="forbidden")
    if isinstance(exc, tg.BadRequest):  # before NetworkError, its base class
        return RequestRejectedError(SERVICE, text, status=400, code="bad_request")
    if isinstance(exc, tg.Conflict):
        return RequestRejectedError(SERVICE, text, status=409, code="conflict")
    if isinstance(exc, tg.ChatMigrated):
        return RequestRejectedError(
            SERVICE,
            f"{doing}: the group became supergroup {exc.new_chat_id}",
            status=400,
            code="chat_migrated",
        )
    if isinstance(exc, tg.TimedOut):
        return ServiceUnavailableError(SERVICE, f"{doing} timed out", code="timeout")
    if isinstance(exc, tg.NetworkError):
        return ServiceUnavailableError(SERVICE, text)
    return RequestRejectedError(SERVICE, text)  # an invalid answer, ok:false without a status


def is_not_modified(exc: tg.TelegramError) -> bool:
    """Telegram's answer to an edit that changes nothing, which counts as success."""
    return isinstance(exc, tg.BadRequest) and "message is not modified" in exc.message.lower()


def is_entity_error(exc: tg.TelegramError) -> bool:
    """Telegram refused the entities sent with a text ("can't parse entities", an entity
    out of bounds or inside a surrogate pair)."""
    return isinstance(exc, tg.BadRequest) and "entit" in exc.message.lower()
