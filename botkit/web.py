"""One aiohttp server for the bot: adapters' webhooks, ``/healthz``, ``/readyz``, ``/metrics``,
and the operations page (``/admin``, :mod:`botkit.admin`) when its token is set.

``/healthz`` says the process is alive (its event loop answers); ``/readyz`` says it takes
work: the database answers, every adapter started, and it is not shutting down. A load
balancer routes by ``/readyz``; a supervisor restarts by ``/healthz``. The server starts
before the adapters, so both answer during a long start-up (migrations), and keeps running
while the bot drains, so webhooks answer 503 instead of refusing connections.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from botkit.metrics import Metrics
from botkit.webhooks import DEFAULT_MAX_BODY_SIZE, MAX_BODY_SIZE

__all__ = ["WebServer"]

log = logging.getLogger(__name__)
#: What aiohttp's server logs through: requests it could not parse, errors in handlers.
http_log = logging.getLogger("botkit.web.http")


class _MalformedRequests(logging.Filter):
    """aiohttp answers a request it cannot parse (a bad header, a broken chunked body)
    with 400 and logs it as an ERROR with a traceback; the caller sent it, so this turns
    that into one warning line. A body that fails again while aiohttp drains it after
    the handler answered (bad gzip) was already refused and logged by the handler
    (:func:`botkit.webhooks.read_webhook_body`): that second record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, web.RequestPayloadError) and record.msg == "Unhandled exception":
            return False
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s: %s"
            record.args = (remote, " ".join(str(exc).split()))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class WebServer:
    """Serves adapters' routes and the bot's health, readiness and metrics endpoints.

    Args:
        host: address to listen on.
        port: port to listen on; 0 picks a free one (see :attr:`port` after start).
        metrics: what ``/metrics`` serves.
        readiness: returns ``None`` when the bot takes work, else why not (``"starting"``,
            ``"draining"``, ``"database unavailable"``).
        max_body_size: the largest request body, in bytes, any route reads.
    """

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        readiness: Callable[[], Awaitable[str | None]],
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self.host = host
        self.port = port
        self._metrics = metrics
        self._readiness = readiness
        # client_max_size bounds request.read() too, for routes that do not use read_body
        self.app = web.Application(client_max_size=max_body_size)
        self.app[MAX_BODY_SIZE] = max_body_size
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics_view)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Sequence[web.RouteDef]) -> None:
        """Mount routes (before :meth:`start`)."""
        self.app.router.add_routes(routes)

    def mount(self, prefix: str, app: web.Application) -> None:
        """Serve a whole app, with its own middlewares, under ``prefix`` (before
        :meth:`start`): the operations page at ``/admin``."""
        self.app.add_subapp(prefix, app)

    async def start(self) -> None:
        """Start listening."""
        if not any(isinstance(f, _MalformedRequests) for f in http_log.filters):
            http_log.addFilter(_MalformedRequests())
        self._runner = web.AppRunner(self.app, access_log=None, logger=http_log)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # the bound port, when 0 was asked for
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("web server listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        reason = await self._readiness()
        if reason is None:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "unavailable", "reason": reason}, status=503)

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), content_type="text/plain", charset="utf-8"
        )
