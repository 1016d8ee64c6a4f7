"""Turning a chat-completions error (HTTP status and body) into botkit's typed errors."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from botkit.exceptions import (
    AuthenticationError,
    ContextLengthError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
)

__all__ = ["SERVICE", "error_from_response", "retry_after_from"]

SERVICE = "llm"

_BODY_PREFIX = 200
_CONTEXT_WORDS = re.compile(r"maximum context length|context[_ ]length|context window", re.I)
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.I)
_SPACES = re.compile(r"\s+")
# A FastAPI/pydantic request-validation failure, as llama-cpp-python's server reports it
# (with status 500): "2 validation errors:\n  {'type': 'literal_error', 'loc': ('body',
# 'response_format', 'type'), 'msg': "Input should be 'text' or 'json_object'", 'input':
# 'json_schema', ...}\n ... File "...app.py", line 376 ..."
_VALIDATION = re.compile(r"^\s*\d+ validation errors?:")
_VALIDATION_ITEM = re.compile(
    r"\{'type': '(?P<type>[^']*)', 'loc': \('body'(?P<loc>[^)]*)\), "
    r"'msg': (?P<msg>\"[^\"]*\"|'[^']*')"
    r"(?:, 'input': (?P<input>'[^']*'|\"[^\"]*\"|None|True|False|-?\d[\d.]*)(?=[,}]))?"
)

# Status implied by an error object's "type" or "code" when there is no HTTP status
# (an error event in the middle of a stream).
_IMPLIED_STATUS = {
    "context_length_exceeded": 400,
    "invalid_request_error": 400,
    "insufficient_quota": 429,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "requests": 429,
    "tokens": 429,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "model_not_found": 404,
    "not_found_error": 404,
}


def error_from_response(
    status: int | None,
    body: bytes | str | Mapping[str, Any],
    *,
    model: str,
    retry_after: float | None = None,
    redact: str | None = None,
) -> ServiceError:
    """The typed error for a failed chat-completions call; the one place that decides.

    Args:
        status: the HTTP status, or ``None`` for an error event inside a stream (the
            status is then implied by the error's ``code`` or ``type``).
        body: the response body (an OpenAI error object ``{"error": {...}}`` or anything
            else, such as a proxy's HTML page), or the already decoded error event.
        model: the model asked for, to name in a 404.
        retry_after: seconds the server asked us to wait, from the headers.
        redact: a string (the API key) to blank out should the server echo it.

    Returns:
        ``AuthenticationError`` (401, 403), ``RequestRejectedError`` (404, other 4xx),
        ``ContextLengthError`` (400 context length), ``QuotaExceededError`` (429
        ``insufficient_quota``), ``RateLimitError`` (other 429) or
        ``ServiceUnavailableError`` (408, 409, 5xx and anything else), all with service
        ``"llm"``.
    """
    message, code, kind = _parse(body)
    if status is None:
        status = _implied_status(code, kind)
    if message is None:
        message = f"HTTP {status}: {_prefix(body)}" if _prefix(body) else f"HTTP {status}"
    if redact:
        message = message.replace(redact, "***")
    tags = {code, kind}
    invalid = _invalid_request(message)
    if invalid is not None:
        # the request itself is wrong, whatever status the server gave: retrying the
        # same bytes cannot help
        return RequestRejectedError(SERVICE, invalid, status=status, code="invalid_request")
    if status in (401, 403):
        return AuthenticationError(SERVICE, message, status=status, code=code)
    if status == 404:
        where = "" if code == "model_not_found" else " (or base_url is wrong)"
        return RequestRejectedError(
            SERVICE, f"model {model!r} not found{where}: {message}", status=status, code=code
        )
    if status == 429:
        if "insufficient_quota" in tags:
            return QuotaExceededError(SERVICE, message, status=status, code=code)
        if retry_after is None:
            retry_after = _retry_after_in_message(message)
        return RateLimitError(SERVICE, message, retry_after=retry_after, status=status, code=code)
    if status in (408, 409) or status >= 500:
        return ServiceUnavailableError(SERVICE, message, status=status, code=code)
    if status == 400 and (
        code == "context_length_exceeded" or _CONTEXT_WORDS.search(message) is not None
    ):
        return ContextLengthError(SERVICE, message, status=status, code=code)
    if 300 <= status < 500:
        if status < 400:
            message = f"unexpected redirect (HTTP {status}); check base_url: {message}"
        return RequestRejectedError(SERVICE, message, status=status, code=code)
    return ServiceUnavailableError(SERVICE, message, status=status, code=code)


def retry_after_from(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait before retrying, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be seconds or an HTTP date; a date in the past means 0.
    ``headers`` must look names up case-insensitively (aiohttp's headers do).
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _parse(body: bytes | str | Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The message, code and type of an OpenAI error body, or ``None``s."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None, None, None
    if not isinstance(data, Mapping):
        return None, None, None
    error = data.get("error", data)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, Mapping):
        return None, None, None
    message = error.get("message")
    code = error.get("code")
    kind = error.get("type")
    return (
        str(message) if message else None,
        str(code) if code is not None else None,
        str(kind) if kind is not None else None,
    )


def _invalid_request(message: str) -> str | None:
    """One line for a request-validation failure (llama-cpp-python reports one as a 500
    with pydantic's errors and a traceback), or ``None`` if ``message`` is not one.

    pydantic lists every branch of a union (a message that is not a system message, not
    a user message...): the error shown is the first that is not such a branch mismatch.
    """
    if _VALIDATION.match(message) is None:
        return None
    items = list(_VALIDATION_ITEM.finditer(message))
    if not items:
        return None
    item = next((i for i in items if i["type"] not in ("literal_error", "missing")), items[0])
    # the path without pydantic's union-branch names ("ChatCompletionRequestUserMessage")
    parts = [p.strip().strip("'") for p in item["loc"].split(",")]
    path = ".".join(p for p in parts if p and not p[:1].isupper())
    got = f" (got {item['input'].strip()})" if item["input"] else ""
    count = len(_VALIDATION_ITEM.findall(message))
    more = f"; {count - 1} more" if count > 1 else ""
    return f"the server refused the request as invalid: {path}: {item['msg'][1:-1]}{got}{more}"


def _implied_status(code: str | None, kind: str | None) -> int:
    """The HTTP status an in-stream error would have had."""
    if code is not None and code.isdigit():
        return int(code)  # vLLM and others put the status in "code"
    for tag in (code, kind):
        if tag in _IMPLIED_STATUS:
            return _IMPLIED_STATUS[tag]
    return 500


def _prefix(body: bytes | str | Mapping[str, Any]) -> str:
    """A short, single-line start of a body that is not an error object."""
    if isinstance(body, Mapping):
        text = json.dumps(body)
    elif isinstance(body, bytes):
        text = body[: _BODY_PREFIX * 4].decode("utf-8", errors="replace")
    else:
        text = body
    text = _SPACES.sub(" ", text).strip()
    return text[:_BODY_PREFIX] + ("…" if len(text) > _BODY_PREFIX else "")


def _retry_after_in_message(message: str) -> float | None:
    """OpenAI's 429 messages say "Please try again in 1.5s" (or "in 20ms")."""
    found = _TRY_AGAIN.search(message)
    if found is None:
        return None
    value = float(found.group(1))
    return value / 1000.0 if found.group(2).lower() == "ms" else value
