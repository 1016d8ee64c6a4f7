"""One aiohttp server for the whole bot: adapters' webhooks, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from botkit.metrics import Metrics

__all__ = ["WebServer"]

log = logging.getLogger(__name__)


class WebServer:
    """Serves adapters' routes and the bot's health and metrics endpoints.

    Args:
        host: address to listen on.
        port: port to listen on; 0 picks a free one (see :attr:`port` after start).
        metrics: what ``/metrics`` serves.
        health: returns True when the bot can do its work (the database answers).
    """

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        health: Callable[[], Awaitable[bool]],
    ) -> None:
        self.host = host
        self.port = port
        self._metrics = metrics
        self._health = health
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics_view)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Sequence[web.RouteDef]) -> None:
        """Mount routes (before :meth:`start`)."""
        self.app.router.add_routes(routes)

    async def start(self) -> None:
        """Start listening."""
        self._runner = web.AppRunner(self.app, access_log=None)
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
        healthy = await self._health()
        return web.json_response(
            {"status": "ok" if healthy else "unavailable"}, status=200 if healthy else 503
        )

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), content_type="text/plain", charset="utf-8"
        )
