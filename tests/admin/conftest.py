"""A real bot with the operations page on, a channel to talk to it, and a browser-less
HTTP client that can log in (``AdminSite``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from botkit import Bot, Plugin
from botkit.testing import FakeModel, InMemoryChannel, run_bot

TOKEN = "admin-token-for-tests-0123456789"


@dataclass
class AdminSite:
    """The running bot, its channel, and an HTTP client with its own cookie jar."""

    bot: Bot
    channel: InMemoryChannel
    model: FakeModel
    http: aiohttp.ClientSession
    base: str
    pages: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def login(self, token: str = TOKEN) -> aiohttp.ClientResponse:
        async with self.http.post(
            self.url("/admin/login"), data={"token": token}, allow_redirects=False
        ) as response:
            await response.read()
            return response

    async def get(self, path: str, **params: str) -> tuple[int, str]:
        async with self.http.get(self.url(path), params=params, allow_redirects=False) as r:
            text = await r.text()
            self.pages.append(text)
            return r.status, text

    async def post(self, path: str, data: Mapping[str, str]) -> tuple[int, str, str]:
        """POST a form; (status, Location, body)."""
        async with self.http.post(self.url(path), data=dict(data), allow_redirects=False) as r:
            return r.status, r.headers.get("Location", ""), await r.text()

    async def csrf(self) -> str:
        """The session's CSRF token, as its pages' forms carry it."""
        status, page = await self.get("/admin/conversations")
        assert status == 200, page
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert found is not None
        return found.group(1)


async def start_site(
    database_url: str,
    *,
    environ: Mapping[str, str] | None = None,
    plugins: Sequence[Plugin] | None = None,
    plugin_settings: Mapping[str, Any] | None = None,
) -> tuple[Bot, InMemoryChannel, FakeModel]:
    channel = InMemoryChannel()
    model = FakeModel("gpt-test", input_price_per_1k="0.01", output_price_per_1k="0.03")
    bot = run_bot(
        database_url=database_url,
        channels=[channel],
        model=model,
        plugins=plugins,
        settings=plugin_settings,
        environ={"BOTKIT_ADMIN_TOKEN": TOKEN} if environ is None else environ,
        config={"web": {"enabled": True, "port": 0}, "bot": {"stream": False}},
    ).bot
    await bot.start()
    return bot, channel, model


@asynccontextmanager
async def running_site(
    database_url: str, plugins: Sequence[Plugin] | None = None
) -> AsyncIterator[AdminSite]:
    """A bot with the operations page on, and a client that has not logged in yet."""
    bot, channel, model = await start_site(database_url, plugins=plugins)
    try:
        assert bot.web is not None
        jar = aiohttp.CookieJar(unsafe=True)  # keep cookies set by 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            yield AdminSite(bot, channel, model, http, f"http://127.0.0.1:{bot.web.port}")
    finally:
        await bot.stop()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AdminSite]:
    """The operations page of a bot on SQLite."""
    async with running_site(f"sqlite:///{tmp_path / 'bot.db'}") as found:
        yield found


@pytest.fixture
async def any_site(database_url: str) -> AsyncIterator[AdminSite]:
    """The operations page on SQLite, and on PostgreSQL when configured."""
    async with running_site(database_url) as found:
        yield found
