"""The web chat in a real browser: Debian's chromium talking to a real bot."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import ConsoleMessage, Dialog, Page

from tests.adapters.web.support import web_chat
from tests.browser.conftest import screenshot
from tests.fakes.openai_server import FakeOpenAI, completion, echo

# what the page's bubbles show, each time one of the bot's changes
RECORD_REPLIES = """() => {
  window.shownReplies = [];
  const log = document.getElementById("chat-log");
  new MutationObserver(() => {
    const replies = [...log.querySelectorAll(".msg.bot")].map((e) => e.textContent);
    const last = replies[replies.length - 1];
    if (last !== undefined && window.shownReplies[window.shownReplies.length - 1] !== last) {
      window.shownReplies.push(last);
    }
  }).observe(log, { childList: true, subtree: true, characterData: true });
}"""


async def _open(page: Page, base: str) -> None:
    await page.goto(base + "/")  # redirected to /chat
    assert page.url == base + "/chat"
    await _connected(page)


async def _connected(page: Page) -> None:
    # predicates are functions: the page's policy forbids evaluating strings
    await page.wait_for_function(
        "() => document.getElementById('chat-status').textContent === 'connected'"
    )


async def _say(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


async def test_a_message_gets_a_streamed_answer_and_a_reload_shows_the_history(
    page: Page, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.default = echo(pad_words=12, interval=0.08)  # a slow stream, word by word
    llm = {"base_url": fake_openai.url, "model": "gpt-4o-mini"}
    whole = "echo: hello browser " + " ".join(f"w{i}" for i in range(12))
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", llm=llm) as chat:
        await _open(page, chat.base)
        await page.evaluate(RECORD_REPLIES)
        await _say(page, "hello browser")
        await page.wait_for_function(
            "text => [...document.querySelectorAll('.msg.bot')].some(e => e.textContent === text)",
            arg=whole,
        )
        shown: list[str] = await page.evaluate("window.shownReplies")
        await screenshot(page, "web-chat-answer")
        assert shown[-1] == whole
        assert len(shown) >= 3  # seen growing, not only when finished
        assert all(whole.startswith(text.rstrip("…")) for text in shown)
        assert [len(t) for t in shown] == sorted(len(t) for t in shown)
        assert await page.locator(".msg.bot").count() == 1  # one message, edited in place

        await page.reload()
        await _connected(page)
        await page.wait_for_function("() => document.querySelectorAll('.msg').length === 2")
        assert await page.locator(".msg.user").all_text_contents() == ["hello browser"]
        assert await page.locator(".msg.bot").all_text_contents() == [whole]
        await screenshot(page, "web-chat-history")


async def test_markup_in_an_answer_or_a_message_shows_as_text_and_runs_nothing(
    page: Page, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    nasty = '<script>alert(1)</script> <img src=x onerror="alert(2)"> and **bold**'
    fake_openai.script(completion(nasty))
    dialogs: list[str] = []
    errors: list[str] = []

    async def dialog(opened: Dialog) -> None:
        dialogs.append(opened.message)
        await opened.dismiss()

    page.on("dialog", dialog)
    page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    llm = {"base_url": fake_openai.url, "model": "gpt-4o-mini"}
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", llm=llm) as chat:
        await _open(page, chat.base)
        await _say(page, "<img src=y onerror=alert(3)> tell me")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.msg.bot')]"
            ".some((e) => e.textContent.includes('bold'))"
        )
        await page.wait_for_timeout(300)  # time for anything that would run to run
        await screenshot(page, "web-chat-markup-as-text")
        reply = page.locator(".msg.bot")
        assert await reply.text_content() == (
            '<script>alert(1)</script> <img src=x onerror="alert(2)"> and bold'
        )
        assert await reply.locator("strong").all_text_contents() == ["bold"]  # Markdown, yes
        assert await page.locator("#chat-log script, #chat-log img").count() == 0
        assert await page.locator(".msg.user").text_content() == (
            "<img src=y onerror=alert(3)> tell me"
        )
    assert dialogs == []
    assert errors == []


async def test_a_message_refused_while_the_bot_restarts_is_sent_again_when_it_is_back(
    page: Page, tmp_path: Path
) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db") as chat:
        await _open(page, chat.base)
        await chat.adapter.stop_intake()  # the bot begins to stop: no new messages
        await _say(page, "are you there?")
        await page.wait_for_function(
            "() => document.getElementById('chat-error').textContent.includes('restarting')"
        )
        assert await page.locator(".msg.user.pending").count() == 1
        await chat.adapter.stop()  # closes the page's socket...
        await chat.adapter.start(chat.bot.inbox)  # ...and it is back: the page reconnects
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.msg.bot')]"
            ".some((e) => e.textContent.endsWith('You said: are you there?'))"
        )
        assert await page.locator(".msg.user").all_text_contents() == ["are you there?"]
        assert await page.locator(".msg.pending").count() == 0
        await screenshot(page, "web-chat-sent-again")
