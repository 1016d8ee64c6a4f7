"""A real headless browser for page tests: Debian's chromium driven by Playwright.

``scripts/test`` installs chromium (``apt-get install chromium``) and Playwright (the dev
extra); Playwright's own browser download is never used. Without chromium the tests
fail with the reason, unless ``BOTKIT_TEST_BROWSER=off`` says to skip them.

Every test gets a fresh page; ``screenshot(page, name)`` keeps a picture of it under
``test-artifacts/screenshots/`` (CI keeps that folder).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
BROWSER_OFF = os.environ.get("BOTKIT_TEST_BROWSER", "on") == "off"


def chromium_path() -> str:
    """Debian's chromium (or ``$BOTKIT_TEST_CHROMIUM``)."""
    found = os.environ.get("BOTKIT_TEST_CHROMIUM") or shutil.which("chromium")
    if found is None:
        pytest.fail(
            "no chromium for the browser tests: scripts/test installs Debian's chromium "
            "(apt-get install chromium); BOTKIT_TEST_BROWSER=off skips them"
        )
    return found


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A new page of a fresh headless chromium."""
    if BROWSER_OFF:
        pytest.skip("BOTKIT_TEST_BROWSER=off")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            # root in a container has no user namespaces for chromium's sandbox
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            context = await browser.new_context()
            yield await context.new_page()
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    """Keep a full-page screenshot of ``page`` as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
