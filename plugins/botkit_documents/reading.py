"""From what a message carries (a link, an attached file) to text, within the limits."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from botkit import Attachment, Context, ServiceError
from botkit_documents.addresses import AddressPolicy
from botkit_documents.extract import (
    HTML_TYPES,
    PDF_TYPES,
    TEXT_TYPES,
    ExtractError,
    extract,
    kind_of,
)
from botkit_documents.fetch import FetchError, FetchLimits, PageFetcher
from botkit_documents.settings import DocumentsSettings

__all__ = ["Source", "Unreadable", "find_links", "read_attachment", "read_link", "readable"]

_LINK = re.compile(r"https?://[^\s<>\"'`\[\]{}|\\^]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~"


class Unreadable(Exception):
    """Nothing could be read from a link or file; the message says why, for the person
    who sent it."""


@dataclass(frozen=True, slots=True)
class Source:
    """Text read from a link or a file.

    Attributes:
        source: the link (after redirects) or the file's name.
        title: its title, or ``""``.
        lines: its text, a block a line, cut to ``max_chars``.
        cut: whether it was cut.
    """

    source: str
    title: str
    lines: tuple[str, ...]
    cut: bool = False


def find_links(text: str) -> list[str]:
    """The http(s) links in ``text``, in order, without trailing punctuation (and
    without a closing parenthesis that does not belong to the link)."""
    found: list[str] = []
    for match in _LINK.finditer(text):
        link = match.group(0).rstrip(_TRAILING)
        while link.endswith(")") and link.count(")") > link.count("("):
            link = link[:-1].rstrip(_TRAILING)
        if link not in found:
            found.append(link)
    return found


def readable(attachments: tuple[Attachment, ...]) -> list[Attachment]:
    """The attachments whose text can be read (text, Markdown, PDF)."""
    return [a for a in attachments if kind_of(a.content_type, a.name) in ("text", "pdf")]


async def read_link(url: str, settings: DocumentsSettings) -> Source:
    """The text of the page (or text or PDF file) at ``url``.

    Raises:
        Unreadable: refused, failed, or no text in it.
    """
    fetcher = PageFetcher(
        FetchLimits(
            max_bytes=settings.max_page_bytes,
            timeout=settings.timeout,
            max_redirects=settings.max_redirects,
            content_types=HTML_TYPES | TEXT_TYPES | PDF_TYPES,
            user_agent=settings.user_agent,
        ),
        AddressPolicy(settings.allowed_networks),
    )
    try:
        fetched = await fetcher.fetch(url)
    except FetchError as exc:
        raise Unreadable(f"I couldn't read {url}: {exc}") from None
    kind = kind_of(fetched.content_type) or "text"
    return await _text_of(fetched.url, fetched.body, kind, fetched.charset, settings)


async def read_attachment(
    ctx: Context, attachment: Attachment, settings: DocumentsSettings
) -> Source:
    """The text of a file that came with the message being answered.

    Raises:
        Unreadable: too large, not fetchable from its channel, or no text in it.
    """
    limit = settings.max_file_bytes
    name = attachment.name or "the file"
    if attachment.size is not None and attachment.size > limit:
        raise Unreadable(f"{name} is larger than {limit:,} bytes; I read files up to that size")
    try:
        data = await ctx.fetch_attachment(attachment, max_bytes=limit)
    except NotImplementedError:
        raise Unreadable(f"I can't download files on this channel ({name})") from None
    except ServiceError as exc:
        raise Unreadable(f"I couldn't get {name}: {exc.reason}") from None
    if len(data) > limit:
        raise Unreadable(f"{name} is larger than {limit:,} bytes; I read files up to that size")
    kind = kind_of(attachment.content_type, attachment.name) or "text"
    charset = _charset(attachment.content_type)
    return await _text_of(name, data, kind, charset, settings)


async def _text_of(
    source: str, data: bytes, kind: str, charset: str | None, settings: DocumentsSettings
) -> Source:
    try:  # parsing a large PDF or page takes a while: not on the event loop
        extracted = await asyncio.to_thread(
            extract, data, kind, charset=charset, max_pages=settings.max_pdf_pages
        )
    except ExtractError as exc:
        raise Unreadable(f"I couldn't read {source}: {exc}") from None
    lines: list[str] = []
    used = 0
    for line in extracted.lines:
        if used + len(line) > settings.max_chars:
            rest = settings.max_chars - used
            if rest > 0:
                lines.append(line[:rest])
            return Source(source, extracted.title, tuple(lines), cut=True)
        lines.append(line)
        used += len(line) + 1
    return Source(source, extracted.title, tuple(lines))


def _charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None
