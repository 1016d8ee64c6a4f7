"""The one place where slack_sdk's and aiohttp's errors become botkit's."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from botkit import (
    AuthenticationError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
)

__all__ = ["AUTH_ERRORS", "service_error"]

SERVICE = "slack"

#: ``ok: false`` codes that mean the token itself is no good.
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "not_allowed_token_type",
        "ekm_access_denied",
    }
)
#: ``ok: false`` codes Slack documents as temporary trouble on its side.
_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def service_error(exc: BaseException, *, method: str) -> ServiceError:
    """Translate an error from one Web API call into botkit's hierarchy.

    The message names the method and Slack's error code, never a token: slack_sdk puts
    tokens in headers, and nothing from the request is copied here.

    Args:
        exc: what slack_sdk or aiohttp raised.
        method: the Web API method called (``"chat.postMessage"``).

    Returns:
        A 429 as ``RateLimitError`` (``retry_after`` from the ``Retry-After`` header),
        a refused token as ``AuthenticationError``, a network failure, timeout or 5xx as
        ``ServiceUnavailableError``, any other ``ok: false`` as ``RequestRejectedError``
        with ``code`` set to Slack's error.
    """
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, SlackApiError):
        response = exc.response
        status: int | None = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        code = _error_code(data)
        if status == 429 or code in ("ratelimited", "rate_limited"):
            headers: Mapping[str, Any] = getattr(response, "headers", None) or {}
            retry_after = _seconds(headers.get("Retry-After"))
            return RateLimitError(
                SERVICE,
                f"{method} was rate limited"
                + (f"; retry after {retry_after:g} s" if retry_after is not None else ""),
                retry_after=retry_after,
                status=429,
                code=code or "ratelimited",
            )
        if code in AUTH_ERRORS:
            return AuthenticationError(
                SERVICE, f"{method} refused the token: {code}", status=status, code=code
            )
        if (status is not None and status >= 500) or code in _TRANSIENT_ERRORS:
            return ServiceUnavailableError(
                SERVICE,
                f"{method} failed on Slack's side: {code or status}",
                status=status,
                code=code,
            )
        return RequestRejectedError(
            SERVICE,
            f"{method} was refused: {code or f'HTTP {status}'}",
            status=status,
            code=code,
        )
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ServiceUnavailableError(SERVICE, f"{method} timed out")
    if isinstance(exc, aiohttp.ClientError | OSError):
        # aiohttp's messages name the host and the failure, never a header
        detail = str(exc)[:200] or type(exc).__name__
        return ServiceUnavailableError(SERVICE, f"{method} failed: {detail}")
    if isinstance(exc, SlackClientError):
        return RequestRejectedError(SERVICE, f"{method} could not be sent: {type(exc).__name__}")
    return ServiceUnavailableError(SERVICE, f"{method} failed: {type(exc).__name__}")


def _error_code(data: object) -> str | None:
    if isinstance(data, Mapping):
        code = data.get("error")
        return code if isinstance(code, str) else None
    return None


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return max(seconds, 0.0)
