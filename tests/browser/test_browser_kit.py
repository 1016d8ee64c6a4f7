"""The browser kit itself: Debian's chromium, driven by Playwright, reads botkit's server."""

from __future__ import annotations

from playwright.async_api import Page

from tests.browser.conftest import screenshot
from tests.fakes.bots import make_bot
from tests.fakes.recording_adapter import RecordingAdapter


async def test_the_browser_reads_a_page_of_the_bots_web_server(
    page: Page, tmp_path: object
) -> None:
    bot = make_bot(
        f"sqlite:///{tmp_path}/bot.db",
        {"test": RecordingAdapter()},
        web={"enabled": True, "port": 0},
    )
    async with bot:
        assert bot.web is not None
        response = await page.goto(f"http://127.0.0.1:{bot.web.port}/healthz")
        assert response is not None
        assert response.status == 200
        assert '"status": "ok"' in await page.inner_text("body")
        shot = await screenshot(page, "healthz")
    assert shot.stat().st_size > 0
