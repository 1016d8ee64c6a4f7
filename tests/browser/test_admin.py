"""The operations page in a real browser: log in, find a conversation and its cost, see the
spend chart, retry a failed reply, and markup from a model shown as text."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from botkit import Bot, RequestRejectedError
from botkit.testing import InMemoryChannel
from tests.admin.conftest import TOKEN, start_site
from tests.browser.conftest import screenshot

SCRIPT = '<script>document.title = "pwned"; window.pwned = 1</script>'


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[tuple[Bot, InMemoryChannel]]:
    """A bot with the operations page on, one priced answer with a script in it, and one
    reply its channel refused."""
    bot, channel, model = await start_site(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        model.reply(f"Careful: {SCRIPT} is not run here.", usage=(1200, 300))
        await channel.exchange("Show me a script tag", user="u1", name="Ada", chat="ada")
        model.reply("I am here.", usage=(100, 0))  # $0.001
        channel.fail_sends(RequestRejectedError("test", "chat not found"))
        await channel.exchange("Are you there?", user="u2", name="Bob", chat="bob")
        yield bot, channel
    finally:
        await bot.stop()


async def test_log_in_find_a_conversation_and_its_cost_see_spend_and_retry_a_reply(
    page: Page, bot: tuple[Bot, InMemoryChannel]
) -> None:
    running, channel = bot
    assert running.web is not None
    base = f"http://127.0.0.1:{running.web.port}"

    await page.goto(f"{base}/admin")
    await expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    await screenshot(page, "admin-login")
    await page.fill('input[name="token"]', "not the token")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".error")).to_have_text("That token is not right.")
    await page.fill('input[name="token"]', TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{base}/admin/conversations")
    await expect(page.locator("h1")).to_have_text("Conversations")
    ada = page.locator("tr", has_text="ada")
    # 1200 prompt tokens at $0.01/1K and 300 output at $0.03/1K
    await expect(ada.locator("td.cost")).to_have_text("$0.021000")
    await screenshot(page, "admin-conversations")

    await page.fill('input[name="user"]', "Ada")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await ada.locator("a").first.click()
    await expect(page.locator("h1")).to_have_text(re.compile(r"Conversation #\d+"))
    await expect(page.locator("td.cost.total")).to_have_text("$0.021000")
    await expect(page.locator("li.call")).to_contain_text("1200 + 300 tokens")
    # the model's <script> is text on the page, not an element, and never ran
    await expect(page.locator("td.text", has_text=SCRIPT)).to_have_count(1)
    assert await page.locator("script").count() == 0
    assert await page.evaluate("window.pwned") is None
    assert await page.title() == "Conversation #1 · botkit operations"
    await screenshot(page, "admin-conversation")

    await page.click("header >> text=Spend")
    chart = page.locator("svg.chart")
    await expect(chart).to_be_visible()
    await expect(chart.locator("rect")).to_have_count(1)
    await expect(page.locator(".legend")).to_contain_text("gpt-test")
    await expect(page.locator("strong.total")).to_have_text("$0.022000")  # both answers
    await screenshot(page, "admin-spend")

    await page.click("header >> text=Needs a person")
    failed = page.locator("section.failed-replies")
    await expect(failed.locator(".count")).to_have_text("1")
    await expect(failed).to_contain_text("chat not found")
    await screenshot(page, "admin-attention")
    channel.delivered.clear()
    await failed.locator("button", has_text="Retry").click()
    await expect(page.locator(".notice")).to_contain_text("set back to pending")
    await asyncio.wait_for(channel.delivered.wait(), 10)
    assert channel.sent[-1].text == "I am here."
    await page.reload()
    await expect(failed.locator(".count")).to_have_text("0")
    await screenshot(page, "admin-attention-after-retry")

    await page.click("header >> text=Work")
    await expect(page.locator("h1")).to_have_text("Work")
    await screenshot(page, "admin-work")


async def test_without_logging_in_every_admin_page_shows_the_login_form(
    page: Page, bot: tuple[Bot, InMemoryChannel]
) -> None:
    running, _ = bot
    assert running.web is not None
    base = f"http://127.0.0.1:{running.web.port}"
    for path in ["/admin/conversations", "/admin/conversations/1", "/admin/spend", "/admin/work"]:
        await page.goto(f"{base}{path}")
        await expect(page.locator('input[name="token"]')).to_be_visible()
        await expect(page.locator("main")).not_to_contain_text("Ada")
    await screenshot(page, "admin-refused")
