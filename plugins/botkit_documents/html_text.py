"""The readable text of an HTML page, with the standard library's ``html.parser``.

Kept: the title, headings (as ``#`` lines), paragraphs, list items (``- ``), table
cells, quotes and preformatted text, each block on its own line. Dropped: scripts,
styles, navigation, asides, footers, forms' controls and anything marked ``hidden``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["PageText", "html_text"]

# elements whose content is never text for a reader
_SKIPPED = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "canvas",
        "iframe",
        "object",
        "nav",
        "aside",
        "footer",
        "button",
        "select",
        "textarea",
    }
)
# elements that start a new line of text
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "blockquote",
        "pre",
        "figcaption",
        "caption",
        "br",
        "hr",
        "ul",
        "ol",
        "dl",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "address",
        "summary",
        "details",
    }
)
# elements without an end tag: they never open a skipped region
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class PageText:
    """What a page says.

    Attributes:
        title: its ``<title>`` (or first heading), ``""`` if none.
        lines: its blocks of text, in order, none empty.
    """

    title: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The blocks joined by newlines."""
        return "\n".join(self.lines)


def html_text(markup: str) -> PageText:
    """The title and readable blocks of ``markup`` (an HTML document or fragment)."""
    parser = _Reader()
    parser.feed(markup)
    parser.close()
    lines = tuple(parser.lines)
    title = parser.title or next((line.lstrip("# ") for line in lines if line[:1] == "#"), "")
    return PageText(title, lines)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.title = ""
        self._in_title = False
        self._title_parts: list[str] = []
        self._skipping: list[str] = []  # open skipped elements, innermost last
        self._parts: list[str] = []
        self._prefix = ""
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag == self._skipping[-1] or (tag in _SKIPPED and tag not in _VOID):
                self._skipping.append(tag)
            return
        if tag == "title":
            self._in_title = True
            return
        hidden = any(
            name == "hidden" or (name == "aria-hidden" and value == "true")
            for name, value in attrs
        )
        if tag in _SKIPPED or (hidden and tag not in _VOID):
            self._skipping.append(tag)
            return
        if tag in _BLOCKS:
            self._flush()
            if tag == "li":
                self._prefix = "- "
            elif len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
                self._prefix = "#" * int(tag[1]) + " "
            elif tag == "pre":
                self._pre += 1
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._parts.append(f" {alt} ")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.pop()
            return
        if tag == "title":
            self._in_title = False
            self.title = _SPACES.sub(" ", "".join(self._title_parts)).strip()
            return
        if tag in _BLOCKS:
            self._flush()
            if tag == "pre" and self._pre:
                self._pre -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif not self._skipping:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        raw = "".join(self._parts)
        self._parts = []
        prefix, self._prefix = self._prefix, ""
        if self._pre:
            for line in raw.splitlines():
                if line.strip():
                    self.lines.append(line.rstrip())
            return
        text = _SPACES.sub(" ", raw).strip()
        if text:
            self.lines.append(prefix + text)
