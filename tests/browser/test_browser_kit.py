"""The browser kit itself: Debian's chromium, driven by Playwright, reads botkit's server."""

from __future__ import annotations

from playwright.async_api import Page

from botkit.testing import InMemoryChannel, run_bot
from tests.browser.conftest import screenshot


async def test_the_browser_reads_a_page_of_the_bots_web_server(
    page: Page, tmp_path: object
) -> None:
    bot = run_bot(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        channels=[InMemoryChannel()],
        model="config",
        config={"web": {"enabled": True, "port": 0}},
    ).bot
    async with bot:
        assert bot.web is not None
        response = await page.goto(f"http://127.0.0.1:{bot.web.port}/healthz")
        assert response is not None
        assert response.status == 200
        assert '"status": "ok"' in await page.inner_text("body")
        shot = await screenshot(page, "healthz")
    assert shot.stat().st_size > 0
