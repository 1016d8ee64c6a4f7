"""``DocumentsSettings``: the ``[plugins.documents]`` table."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from botkit import ConfigError

__all__ = ["DEFAULT_INSTRUCTION", "DocumentsSettings"]

DEFAULT_INSTRUCTION = (
    "Summarise this document for someone who has not read it: what it is, its main "
    "points, and any numbers, dates, names or conclusions that matter. Use short bullet "
    "points, in the document's language."
)


@dataclass(frozen=True, slots=True)
class DocumentsSettings:
    """``[plugins.documents]``.

    Attributes:
        link_words: a message with a link and at most this many other words is taken
            as sending the link to be summarised ("what does this say? <link>"); longer
            messages are left to the chat. 0: links only through ``/summarize <link>``.
        files: summarise a text, Markdown or PDF file that comes with a message.
        max_page_bytes: the largest page (or file behind a link) read.
        max_file_bytes: the largest attached file read.
        timeout: seconds for fetching one link, redirects included.
        max_redirects: redirects followed for one link.
        allowed_networks: private networks links may lead to (``"10.1.0.0/16"``); by
            default only public addresses are fetched, never loopback, private,
            link-local or other local ones.
        user_agent: the ``User-Agent`` sent with each request.
        max_pdf_pages: pages of a PDF read.
        max_chars: characters of a document's text kept (a longer one is cut).
        instruction: how summaries should read.
        summary_tokens: the longest summary, in tokens.
        chunk_tokens: the most text tokens in one summarising request; 0: as much as
            the model's window allows.
        parallel: how many parts of a long document are summarised at once.
        passage_tokens: the size of the passages a document is cut into for questions.
        context_tokens: the most tokens of passages added to the prompt of an answer.
        max_documents: documents kept per conversation; the oldest go first.
    """

    link_words: int = 30
    files: bool = True
    max_page_bytes: int = 2_000_000
    max_file_bytes: int = 10_000_000
    timeout: float = 15.0
    max_redirects: int = 5
    allowed_networks: tuple[str, ...] = ()
    user_agent: str = "botkit (link summaries)"
    max_pdf_pages: int = 300
    max_chars: int = 500_000
    instruction: str = DEFAULT_INSTRUCTION
    summary_tokens: int = 600
    chunk_tokens: int = 0
    parallel: int = 4
    passage_tokens: int = 250
    context_tokens: int = 2000
    max_documents: int = 5

    def problems(self, key: str) -> Iterator[ConfigError]:
        """Sizes below their least and networks that are not networks."""
        for name in (
            "max_page_bytes",
            "max_file_bytes",
            "max_pdf_pages",
            "max_chars",
            "summary_tokens",
            "parallel",
            "passage_tokens",
            "context_tokens",
            "max_documents",
        ):
            if getattr(self, name) < 1:
                yield ConfigError(f"{key}.{name}", "must be at least 1")
        for name in ("link_words", "max_redirects", "chunk_tokens"):
            if getattr(self, name) < 0:
                yield ConfigError(f"{key}.{name}", "must not be negative")
        if self.timeout <= 0:
            yield ConfigError(f"{key}.timeout", "must be positive")
        for index, entry in enumerate(self.allowed_networks):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                yield ConfigError(
                    f"{key}.allowed_networks[{index}]", f"{entry!r} is not an IP network"
                )
