"""The documents plugin: summaries of links and files people send, and answers about them.

A message that is a link (with at most ``link_words`` other words), ``/summarize
<link>``, or a message with a text, Markdown or PDF file gets a summary of what was
sent. The text stays with the conversation as a document: later answers of the chat
skill get the passages most relevant to each question (``prompt_context``).
"""

from __future__ import annotations

import logging

from botkit import Attachment, Context, Message, Plugin, Reply, SkipHandler
from botkit_documents.context import prompt_text
from botkit_documents.reading import (
    Source,
    Unreadable,
    find_links,
    read_attachment,
    read_link,
    readable,
)
from botkit_documents.settings import DocumentsSettings
from botkit_documents.shelf import Document, Shelf
from botkit_summary.mapreduce import chunk_lines, summarize

__all__ = ["plugin"]

log = logging.getLogger(__name__)

STAND_IN_NOTE = "The offline stand-in model cannot summarise; this is how it begins:"
_STAND_IN_CHARS = 600
_MAX_FILES = 5  # read from one message
_USAGE = "Send a link (/summarize https://...) or attach a text, Markdown or PDF file."

plugin = Plugin(
    "documents",
    description="Summaries of links and files people send, and answers about them",
    settings_class=DocumentsSettings,
)


def _sends_something(message: Message) -> bool:
    """A link or a readable file; the handler decides whether it is meant to be read."""
    return bool(readable(message.attachments)) or "http" in message.text.lower()


@plugin.on_command(
    "summarize", description="Summarise a link or an attached file: /summarize https://..."
)
async def summarize_command(message: Message, ctx: Context) -> Reply | str:
    """Summarise the link after the command, or the files that came with it."""
    links = find_links(ctx.args)
    files = readable(message.attachments)
    if not links and not files:
        return _USAGE
    note = _without_links(ctx.args, links)
    return await _read_and_summarise(message, ctx, links[:1], files, note)


@plugin.on_message(_sends_something)
async def sent(message: Message, ctx: Context) -> Reply | str:
    """Summarise a link someone sent, or the files that came with a message."""
    settings = ctx.settings_as(DocumentsSettings)
    text = message.text.strip()
    if text.startswith("/"):
        raise SkipHandler  # an unknown command: the router says so
    files = readable(message.attachments) if settings.files else []
    links = find_links(text)
    note = _without_links(text, links)
    if files:
        return await _read_and_summarise(message, ctx, [], files, note)
    if len(links) == 1 and settings.link_words and len(note.split()) <= settings.link_words:
        return await _read_and_summarise(message, ctx, links, [], note)
    raise SkipHandler  # chat with a link in it, not a link sent to be read


@plugin.on_command("documents", description="List the documents of this conversation")
async def documents_command(message: Message, ctx: Context) -> str:
    """Name the documents later answers can draw on."""
    documents = await _shelf(ctx).documents(ctx.conversation_id)
    if not documents:
        return "No documents in this conversation yet. " + _USAGE
    lines = [f"{n}. {d.label}" for n, d in enumerate(documents, 1)]
    return "Documents I can answer questions about:\n" + "\n".join(lines)


@plugin.prompt_context
async def relevant_passages(message: Message, ctx: Context, room: int) -> str | None:
    """The passages of this conversation's documents that bear on the message."""
    settings = ctx.settings_as(DocumentsSettings)
    shelf = _shelf(ctx)
    documents = await shelf.documents(ctx.conversation_id)
    if not documents:
        return None
    texts = [(d, await shelf.passages(ctx.conversation_id, d)) for d in documents]
    return prompt_text(message.text, texts, min(room, settings.context_tokens), ctx.llm.tokens)


async def _read_and_summarise(
    message: Message, ctx: Context, links: list[str], files: list[Attachment], note: str
) -> Reply | str:
    settings = ctx.settings_as(DocumentsSettings)
    await ctx.typing()
    sources: list[Source] = []
    problems: list[str] = []
    for link in links:
        try:
            sources.append(await read_link(link, settings))
        except Unreadable as exc:
            problems.append(str(exc))
    for attachment in files[:_MAX_FILES]:
        try:
            sources.append(await read_attachment(ctx, attachment, settings))
        except Unreadable as exc:
            problems.append(str(exc))
    if not sources:
        return "\n".join(problems) or _USAGE
    shelf = _shelf(ctx)
    answers: list[str] = []
    for number, source in enumerate(sources):
        summary = await _summary(ctx, settings, source, note)
        passages = [
            "\n".join(chunk)
            for chunk in chunk_lines(source.lines, settings.passage_tokens, ctx.llm.tokens)
        ]
        document = Document(
            id=f"{message.id or 0}.{number}",
            message_id=message.id or 0,
            title=source.title,
            source=source.source,
            summary=summary,
            passages=len(passages),
        )
        await shelf.add(ctx.conversation_id, document, passages)
        cut = " (the start of it: it is longer than I keep)" if source.cut else ""
        answers.append(f"Summary of {document.label}{cut}:\n\n{summary}")
    answers.extend(problems)
    answers.append("Ask me anything about it." if len(sources) == 1 else "Ask me about them.")
    return Reply("\n\n".join(answers))


async def _summary(ctx: Context, settings: DocumentsSettings, source: Source, note: str) -> str:
    if ctx.uses_stand_in:
        return f"{STAND_IN_NOTE}\n\n{_opening(source.lines)}"
    instruction = settings.instruction
    if source.title:
        instruction += f"\nThe document's title: {source.title}"
    if note:
        instruction += f"\nThe person who sent it wrote: {note}\nAnswer that too."
    return await summarize(
        ctx.llm,
        source.lines,
        instruction=instruction,
        summary_tokens=settings.summary_tokens,
        chunk_tokens=settings.chunk_tokens or None,
        parallel=settings.parallel,
        what="document",
    )


def _opening(lines: tuple[str, ...]) -> str:
    text = "\n".join(lines)
    if len(text) <= _STAND_IN_CHARS:
        return text
    cut = text.rfind(" ", 0, _STAND_IN_CHARS)
    return text[: cut if cut > 0 else _STAND_IN_CHARS] + " …"


def _without_links(text: str, links: list[str]) -> str:
    for link in links:
        text = text.replace(link, " ")
    return " ".join(text.split())


def _shelf(ctx: Context) -> Shelf:
    return Shelf(ctx.state, ctx.store, keep=ctx.settings_as(DocumentsSettings).max_documents)
