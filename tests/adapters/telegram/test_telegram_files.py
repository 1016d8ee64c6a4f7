"""Files sent on Telegram: downloaded when a plugin asks (getFile, then the file), within
the size limits, and summarised by the documents plugin inside a real bot."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from botkit import Attachment, Bot, RequestRejectedError
from botkit.config import parse_config
from botkit_telegram import TelegramAdapter
from tests.adapters.telegram.support import corpus, eventually, make_settings
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.fakes.pdfs import text_pdf
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI


def document_update(
    api: FakeTelegramAPI, data: bytes, name: str, mime: str, **extra: Any
) -> dict[str, Any]:
    update = copy.deepcopy(corpus("01-private-text"))
    message = update["message"]
    del message["text"]
    message.pop("entities", None)
    message["document"] = {**api.add_file(data), "file_name": name, "mime_type": mime}
    message.update(extra)
    return update


async def test_a_pdf_sent_without_a_caption_is_summarised(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    pdf = text_pdf([["Minutes of the board", "The budget was approved."]])
    fake_openai.script(completion("- The board approved the budget."))
    config = parse_config(
        {
            "bot": {"stream": False, "shutdown_grace": 5.0},
            "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "adapters": {
                "telegram": {
                    "use": "botkit_telegram:TelegramAdapter",
                    "api_url": api.api_url,
                    "poll_timeout": 1,
                }
            },
            "plugins": {"documents": {"use": "botkit_documents:plugin"}, "chat": {}},
        },
        environ={"TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-test-key-0123456789"},
    )
    async with Bot(config):
        await api.push_update(document_update(api, pdf, "minutes.pdf", "application/pdf"))
        await eventually(lambda: len(api.sent) == 1, within=10)
    [reply] = api.sent
    assert reply.text.startswith("Summary of minutes.pdf:")
    assert "The board approved the budget." in reply.text
    [request] = fake_openai.requests
    assert request.messages[-1]["content"] == "Minutes of the board\nThe budget was approved."
    assert [c.method for c in api.requests if c.method == "getFile"] == ["getFile"]
    assert len(api.downloads) == 1


async def test_fetch_attachment_downloads_within_the_limits(api: FakeTelegramAPI) -> None:
    adapter = TelegramAdapter("telegram", make_settings(api))
    fields = api.add_file(b"hello file")
    attachment = Attachment("a.txt", "text/plain", 10, f"telegram-file:{fields['file_id']}")
    try:
        assert await adapter.fetch_attachment(attachment) == b"hello file"
        with pytest.raises(RequestRejectedError) as small:
            await adapter.fetch_attachment(attachment, max_bytes=5)
        assert small.value.code == "too_large"
        huge = api.add_file(b"x" * 100, size=30_000_000)  # a size the update stated
        big = Attachment(
            "big.bin", "application/pdf", 30_000_000, f"telegram-file:{huge['file_id']}"
        )
        with pytest.raises(RequestRejectedError, match="over the limit"):
            await adapter.fetch_attachment(big)
        gone = Attachment("old.txt", "text/plain", None, "telegram-file:no-such-file")
        with pytest.raises(RequestRejectedError, match=r"(?i)invalid file_id"):
            await adapter.fetch_attachment(gone)
        with pytest.raises(RequestRejectedError) as foreign:
            await adapter.fetch_attachment(Attachment("x", "text/plain", url="https://x.test/a"))
        assert foreign.value.code == "unknown_attachment"
    finally:
        await adapter.stop()
    assert len(api.downloads) == 1  # only the file within the limit was downloaded
    assert TOKEN not in repr(attachment)


async def test_a_file_over_the_bot_api_limit_is_refused_by_telegram(api: FakeTelegramAPI) -> None:
    adapter = TelegramAdapter("telegram", make_settings(api))
    fields = api.add_file(b"z" * (20 * 1024 * 1024 + 1), size=1)  # the update understated it
    attachment = Attachment(
        "big.pdf", "application/pdf", None, f"telegram-file:{fields['file_id']}"
    )
    try:
        with pytest.raises(RequestRejectedError) as refused:
            await adapter.fetch_attachment(attachment)
    finally:
        await adapter.stop()
    assert refused.value.code == "too_large"
    assert api.downloads == []
