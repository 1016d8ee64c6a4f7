"""What every webhook an adapter mounts needs: a bounded body, a readable one, and a gate.

A webhook handler reads its request in this order, so anything a caller controls is
answered with a 4xx and one log line, never a traceback or a 5xx:

1. :func:`read_webhook_body`: at most the server's ``web.max_body_size`` bytes (413 past it,
   refused from ``Content-Length`` alone when that already says too much);
2. its own authentication (Slack's signature, Telegram's secret token): 401;
3. :func:`parse_json_object`, or the channel's own parsing: 400 for a body that is not UTF-8,
   not JSON, or not a JSON object;
4. :meth:`WebhookGate.admit`: 503 with ``Retry-After`` while its adapter is not taking
   events (starting, draining, stopped);
5. only then the event itself.

The 4xx and 503 answers are raised as aiohttp's ``HTTPException``\\ s, which aiohttp turns
into plain responses without logging them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "MAX_BODY_SIZE",
    "WebhookGate",
    "parse_json_object",
    "read_webhook_body",
    "refuse_request",
]

#: What ``web.max_body_size`` is unless configured: Slack's and Telegram's events are a
#: few KiB; a body this large is no event of theirs.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
#: The web server's body limit, on its aiohttp application (read by :func:`read_webhook_body`).
MAX_BODY_SIZE = web.AppKey("botkit_max_body_size", int)
#: How long a request that arrives while its adapter is still starting waits for it.
#: Under Slack's 3-second acknowledgement deadline, so a held event is acknowledged in
#: time; long enough for an adapter that is about to finish starting.
HOLD = 2.0
#: What the ``Retry-After`` of a 503 says, in seconds.
RETRY_AFTER = 5


def refuse_request(
    log: logging.Logger,
    request: web.Request,
    what: str,
    status: type[web.HTTPClientError],
    reason: str,
) -> web.HTTPClientError:
    """Log one line about a refused request and build the error to raise for it.

    Args:
        log: the adapter's logger.
        request: the refused request.
        what: who refuses, e.g. ``"slack events"``.
        status: the aiohttp error class (``web.HTTPBadRequest``...).
        reason: what was wrong, also the response's text.
    """
    log.warning("%s: refused a request from %s: %s", what, request.remote, reason)
    return status(text=reason)


async def read_webhook_body(request: web.Request, log: logging.Logger, what: str) -> bytes:
    """The request's body, read only up to the server's limit.

    Raises:
        web.HTTPRequestEntityTooLarge: the body (declared or read) is over the limit.
    """
    limit = request.app.get(MAX_BODY_SIZE, DEFAULT_MAX_BODY_SIZE)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(log, request, what, limit)
    body = bytearray()
    try:
        while chunk := await request.content.readany():  # at most a buffer's worth
            body += chunk
            if len(body) > limit:
                raise _too_large(log, request, what, limit)
    except (HttpProcessingError, web.RequestPayloadError) as exc:  # broken chunks, bad gzip
        reason = " ".join(str(exc).split())
        raise refuse_request(
            log, request, what, web.HTTPBadRequest, f"the body could not be read ({reason})"
        ) from None
    return bytes(body)


def _too_large(
    log: logging.Logger, request: web.Request, what: str, limit: int
) -> web.HTTPRequestEntityTooLarge:
    log.warning("%s: refused a request from %s: body over %d bytes", what, request.remote, limit)
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=request.content_length or limit + 1
    )


def parse_json_object(
    raw: bytes, request: web.Request, log: logging.Logger, what: str
) -> dict[str, Any]:
    """Parse a body that must be one JSON object.

    Raises:
        web.HTTPBadRequest: it is not UTF-8, not JSON, or not an object.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse_request(
            log, request, what, web.HTTPBadRequest, "the body is not UTF-8"
        ) from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise refuse_request(
            log, request, what, web.HTTPBadRequest, "the body is not JSON"
        ) from None
    if not isinstance(value, dict):
        raise refuse_request(
            log, request, what, web.HTTPBadRequest, "the body is not a JSON object"
        )
    return value


GateState = Literal["starting", "open", "closed"]


class WebhookGate:
    """Lets a webhook's requests through only while its adapter takes events.

    An adapter opens its gate once started (:meth:`open`) and closes it first thing when
    it stops taking events (:meth:`close`), which also waits for the requests already let
    through. While the adapter is starting, a request waits up to ``hold`` seconds for the
    gate to open; while it is closed a request is answered 503 with ``Retry-After`` at
    once, and the channel delivers it again later (to this process or another).

    Args:
        what: who answers, for the log, e.g. ``"slack events"``.
        hold: seconds a request that arrives while the adapter starts may wait.
        retry_after: the ``Retry-After`` of a 503, in seconds.
    """

    def __init__(self, what: str, *, hold: float = HOLD, retry_after: int = RETRY_AFTER) -> None:
        self.what = what
        self.hold = hold
        self.retry_after = retry_after
        self._state: GateState = "starting"
        self._opened = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def state(self) -> GateState:
        """``"starting"`` (never opened), ``"open"``, or ``"closed"`` (stopped taking events)."""
        return self._state

    def open(self) -> None:
        """Let requests through (the adapter started)."""
        self._state = "open"
        self._opened.set()

    async def close(self, *, wait: float = 10.0) -> None:
        """Refuse new requests, then wait up to ``wait`` s for those let through."""
        self._state = "closed"
        self._opened.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), wait)

    @contextlib.asynccontextmanager
    async def admit(self, log: logging.Logger) -> AsyncIterator[None]:
        """Run the body of the ``async with`` only while the gate is open.

        Raises:
            web.HTTPServiceUnavailable: the adapter is not taking events (with
                ``Retry-After``).
        """
        if self._state == "starting":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._opened.wait(), self.hold)
        if self._state != "open":
            reason = "starting" if self._state == "starting" else "not taking events"
            log.info("%s: answered 503 (%s); the sender will retry", self.what, reason)
            raise web.HTTPServiceUnavailable(
                text=reason, headers={"Retry-After": str(self.retry_after)}
            )
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
