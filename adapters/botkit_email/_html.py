"""HTML mail as readable plain text, with the standard library's ``html.parser`` only."""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_BLOCK = {
    "address", "article", "aside", "blockquote", "center", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
    "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_SKIP = {"head", "script", "style", "title", "template", "noscript", "svg", "object"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr", "source"}
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")


class _Converter(HTMLParser):
    """Collects text, turning blocks into lines, links into ``text (url)``, quotes into ``>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._skip = 0
        self._pre = 0
        self._quote = 0
        self._lists: list[list[int]] = []  # per open list: [counter] (-1 = unordered)
        self._links: list[tuple[str, int]] = []

    # -- parser callbacks --------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
            return
        if self._skip:
            return
        if tag == "br":
            self._newline(force=True)
        elif tag in ("ul", "ol"):
            self._newline()
            self._lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._newline()
            depth = max(len(self._lists) - 1, 0)
            marker = "-"
            if self._lists and self._lists[-1][0] >= 0:
                self._lists[-1][0] += 1
                marker = f"{self._lists[-1][0]}."
            self._line.append("  " * depth + marker + " ")
        elif tag == "blockquote":
            self._newline()
            self._quote += 1
        elif tag == "pre":
            self._newline()
            self._pre += 1
        elif tag == "hr":
            self._newline()
            self.lines.append(self._prefix() + "----")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip():
                self._text(f"[{alt.strip()}]")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len("".join(self._line))))
        elif tag in ("td", "th"):
            if "".join(self._line).strip():
                self._line.append("  ")
        elif tag in _BLOCK:
            self._newline()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(self._skip - 1, 0)
            return
        if self._skip:
            return
        if tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._newline()
        elif tag == "blockquote":
            self._newline()
            self._quote = max(self._quote - 1, 0)
        elif tag == "pre":
            self._newline()
            self._pre = max(self._pre - 1, 0)
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self._line)[start:].strip()
            if href.startswith(("http://", "https://")) and href not in label:
                self._line.append(f" ({href})" if label else href)
            elif href.startswith("mailto:") and not label:
                self._line.append(href[7:])
        elif tag in ("td", "th"):
            pass
        elif tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "div", "table", "tr"):
            self._newline()
            if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6"):
                self._blank()
        elif tag in _BLOCK:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            parts = data.split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._newline(force=True)
                self._line.append(part)
            return
        self._text(_SPACES.sub(" ", data))

    # -- helpers -----------------------------------------------------------------------

    def _text(self, text: str) -> None:
        if not self._line or "".join(self._line).endswith((" ", "\n")):
            text = text.lstrip(" ")
        if text:
            self._line.append(text)

    def _prefix(self) -> str:
        return "> " * self._quote

    def _newline(self, *, force: bool = False) -> None:
        text = "".join(self._line)
        self._line = []
        if not self._pre:
            text = text.rstrip()
        if text.strip() or force:
            self.lines.append(
                (self._prefix() + text).rstrip() if text else self._prefix().rstrip()
            )

    def _blank(self) -> None:
        if self.lines and self.lines[-1].strip("> "):
            self.lines.append(self._prefix().rstrip())

    def finish(self) -> str:
        self._newline()
        out: list[str] = []
        for line in self.lines:
            blank = not line.strip("> ").strip()
            if blank and (not out or not out[-1].strip("> ").strip()):
                continue  # collapse runs of blank lines, drop leading ones
            out.append(line)
        while out and not out[-1].strip("> ").strip():
            out.pop()
        return "\n".join(out)


def html_to_text(html: str) -> str:
    """Readable text from an HTML mail body: paragraphs, lists, links, ``>`` for quotes.

    Never raises: markup the parser cannot make sense of is kept as text.
    """
    converter = _Converter()
    try:
        converter.feed(html)
        converter.close()
    except Exception:  # html.parser is lenient, but a converter must never crash intake
        return _SPACES.sub(" ", re.sub(r"<[^>]*>", " ", html)).strip()
    return converter.finish()
