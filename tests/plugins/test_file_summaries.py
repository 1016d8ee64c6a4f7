"""Files people attach: text and Markdown decoded by their charset, PDFs read with
pypdf (scans and locked files refused clearly), summarised and kept for questions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from botkit import Attachment, ChatRequest, RequestRejectedError
from botkit.testing import FakeModel, InMemoryChannel, TestBot
from botkit_chat import plugin as chat
from botkit_documents import plugin as documents
from botkit_documents.extract import decode_text, kind_of
from tests.fakes.pdfs import drawing_pdf, locked_pdf, text_pdf
from tests.plugins.conftest import StartBot


class FileChannel(InMemoryChannel):
    """An in-memory channel whose messages carry files, fetched on demand like the
    email adapter's (only a reference travels with the message)."""

    def __init__(self) -> None:
        super().__init__("files")
        self.files: dict[str, bytes] = {}
        self.fetched: list[tuple[str, int | None]] = []

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> bytes:
        self.fetched.append((attachment.name, max_bytes))
        data = self.files.get(attachment.url or "")
        if data is None:
            raise RequestRejectedError("files", "the file is gone", code="attachment_gone")
        return data

    def attach(
        self, name: str, content_type: str, data: bytes, *, size: int | None = None
    ) -> Attachment:
        url = f"files://{len(self.files)}"
        self.files[url] = data
        return Attachment(name, content_type, len(data) if size is None else size, url)


async def send_files(bot: TestBot, text: str, *attachments: Attachment) -> list[str]:
    channel = bot.channels["files"]
    assert isinstance(channel, FileChannel)
    assert channel._inbox is not None
    before = len(channel.sent)
    message = dataclasses.replace(channel.message(text), attachments=attachments)
    accepted = await channel._inbox.accept(message)
    await bot.bot.inbox.wait_done(accepted.message_id)
    return [s.text for s in channel.sent[before:]]


def first_words(request: ChatRequest) -> str:
    return "SUMMARY: " + " ".join(str(request.messages[-1]["content"]).split()[:4])


def bot_with_files(start_bot: StartBot, model: Any, **settings: Any) -> Any:
    return start_bot(
        plugins=[documents, chat],
        model=model,
        channels=[FileChannel()],
        settings={"documents": settings} if settings else None,
    )


async def test_a_text_file_in_a_legacy_charset_is_decoded_and_summarised(
    start_bot: StartBot,
) -> None:
    model = FakeModel().respond_with(first_words, purpose="summary")
    notes = "Crème brûlée für Straße — the café's recipe.\n\nBake at 150 degrees.\n"
    async with bot_with_files(start_bot, model) as bot:
        channel = bot.channels["files"]
        [answer] = await send_files(
            bot, "", channel.attach("recipe.txt", "text/plain", notes.encode("cp1252"))
        )
    assert answer.startswith("Summary of recipe.txt:\n\nSUMMARY: Crème brûlée für Straße")
    [request] = model.requests_for("summary")
    assert request.messages[1]["content"] == (
        "Crème brûlée für Straße — the café's recipe.\nBake at 150 degrees."
    )
    assert channel.fetched == [("recipe.txt", 10_000_000)]


async def test_a_pdf_is_summarised_and_a_scanned_one_refused_clearly(start_bot: StartBot) -> None:
    model = FakeModel().respond_with(first_words, purpose="summary")
    pdf = text_pdf([["Lease agreement", "Rent is due on the first day."], ["Page two."]])
    async with bot_with_files(start_bot, model) as bot:
        channel = bot.channels["files"]
        [good] = await send_files(
            bot, "the lease", channel.attach("lease.pdf", "application/octet-stream", pdf)
        )
        [scan] = await send_files(
            bot, "", channel.attach("scan.pdf", "application/pdf", drawing_pdf())
        )
        [locked] = await send_files(
            bot, "", channel.attach("locked.pdf", "application/pdf", locked_pdf(pdf))
        )
    assert good.startswith("Summary of lease.pdf:\n\nSUMMARY: Lease agreement Rent is")
    [request] = model.requests_for("summary")
    assert request.messages[1]["content"] == (
        "Lease agreement\nRent is due on the first day.\nPage two."
    )
    assert scan == (
        "I couldn't read scan.pdf: the PDF has no text layer (a scanned document?); I can "
        "only read PDFs with text in them"
    )
    assert locked == (
        "I couldn't read locked.pdf: the PDF is locked with a password; send it without "
        "the password"
    )


async def test_a_file_over_the_limit_is_not_downloaded(start_bot: StartBot) -> None:
    async with bot_with_files(start_bot, FakeModel(), max_file_bytes=1000) as bot:
        channel = bot.channels["files"]
        [answer] = await send_files(
            bot, "", channel.attach("big.txt", "text/plain", b"x", size=5000)
        )
    assert answer == "big.txt is larger than 1,000 bytes; I read files up to that size"
    assert channel.fetched == []


async def test_a_file_the_channel_lost_is_named_in_the_answer(start_bot: StartBot) -> None:
    async with bot_with_files(start_bot, FakeModel()) as bot:
        gone = Attachment("notes.md", "text/markdown", 10, "files://nowhere")
        [answer] = await send_files(bot, "", gone)
    assert answer == "I couldn't get notes.md: the file is gone"


async def test_other_files_are_left_to_the_chat(start_bot: StartBot) -> None:
    async with bot_with_files(start_bot, FakeModel()) as bot:
        channel = bot.channels["files"]
        answers = await send_files(
            bot, "look", channel.attach("photo.jpg", "image/jpeg", b"\xff\xd8")
        )
    assert answers == ["echo: look"]


async def test_questions_about_a_file_get_its_relevant_passage(start_bot: StartBot) -> None:
    model = FakeModel().reply("- Two topics.", purpose="summary")
    text = (
        "# Parking\nVisitors park in lot B behind the north entrance.\n\n"
        "# Lunch\nThe canteen serves vegetarian curry on Thursdays.\n"
    )
    async with bot_with_files(start_bot, model, passage_tokens=20) as bot:
        channel = bot.channels["files"]
        await send_files(bot, "", channel.attach("guide.md", "text/markdown", text.encode()))
        await send_files(bot, "Where do visitors park?")
    [request] = model.requests_for("chat")
    context = str(request.messages[1]["content"])
    assert "Document 1: guide.md" in context
    assert "Visitors park in lot B behind the north entrance." in context
    assert "curry" not in context


@pytest.mark.parametrize(
    ("content_type", "name", "kind"),
    [
        ("text/plain; charset=utf-8", "a", "text"),
        ("text/markdown", "a", "text"),
        ("application/pdf", "a", "pdf"),
        ("application/octet-stream", "Report.PDF", "pdf"),
        ("application/octet-stream", "notes.md", "text"),
        ("application/octet-stream", "archive.zip", None),
        ("image/png", "a.txt", None),
    ],
)
def test_readable_files_are_known_by_type_or_by_name(
    content_type: str, name: str, kind: str | None
) -> None:
    assert kind_of(content_type, name) == kind


def test_text_is_decoded_by_its_declared_charset_then_its_mark_then_detection() -> None:
    assert decode_text("Grüße".encode("latin-1"), "iso-8859-1") == "Grüße"
    assert decode_text("Grüße".encode("utf-16")) == "Grüße"
    assert decode_text("Grüße".encode(), "no-such-charset") == "Grüße"
    assert (
        decode_text("Привет, как дела? Всё хорошо.".encode("cp1251"))
        == "Привет, как дела? Всё хорошо."
    )
