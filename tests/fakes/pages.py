"""A local web site for link tests: pages, redirect chains, oversized, slow and
non-HTML answers, on 127.0.0.1 port 0, recording every request it gets."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["PageServer"]


@dataclass
class PageServer:
    """Serves :attr:`pages` (path → (content type, body)) and a few behaviours:

    - ``/redirect/N``: N redirects (302, relative ``Location``) ending at ``/article``;
    - ``/redirect-to?url=...``: one 302 to any URL;
    - ``/big``: ``size`` bytes of HTML with a ``Content-Length``; ``/big-chunked``: the
      same streamed in chunks without one;
    - ``/slow``: waits ``slow_seconds`` before answering.

    Attributes:
        requests: every path asked for, in order (with the ``Host`` header it came with).
    """

    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    size: int = 3_000_000
    slow_seconds: float = 30.0
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        app = web.Application()
        app.router.add_get("/redirect/{count}", self._redirect)
        app.router.add_get("/redirect-to", self._redirect_to)
        app.router.add_get("/big", self._big)
        app.router.add_get("/big-chunked", self._big_chunked)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/{path:.*}", self._page)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        self._closing = asyncio.Event()

    async def __aenter__(self) -> PageServer:
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._closing.set()
        await self._server.close()

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self._server.port}{path}"

    @property
    def port(self) -> int:
        """The port it listens on."""
        port = self._server.port
        assert port is not None
        return port

    def _record(self, request: web.Request) -> None:
        self.requests.append((request.path_qs, request.headers.get("Host", "")))

    async def _page(self, request: web.Request) -> web.Response:
        self._record(request)
        found = self.pages.get(request.path)
        if found is None:
            return web.Response(status=404, text="not here")
        content_type, body = found
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _redirect(self, request: web.Request) -> web.Response:
        self._record(request)
        count = int(request.match_info["count"])
        target = f"/redirect/{count - 1}" if count > 1 else "/article"
        raise web.HTTPFound(target)

    async def _redirect_to(self, request: web.Request) -> web.Response:
        self._record(request)
        raise web.HTTPFound(request.query["url"])

    async def _big(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(body=b"<p>" + b"x" * self.size, content_type="text/html")

    async def _big_chunked(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        block = b"<p>" + b"y" * 65_533
        for _ in range(self.size // len(block) + 1):
            await response.write(block)
        await response.write_eof()
        return response

    async def _slow(self, request: web.Request) -> web.Response:
        self._record(request)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.slow_seconds)
        return web.Response(text="<p>late</p>", content_type="text/html")
