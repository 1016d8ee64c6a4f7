"""Markdown (what models write) to Telegram's HTML, and long replies to pieces that fit.

Telegram's HTML accepts a handful of tags (``b i s u code pre a blockquote
tg-spoiler``), wants ``<``, ``>`` and ``&`` escaped everywhere else, and rejects a
message whose tags do not nest ("can't parse entities"). Every substitution here wraps
already balanced content in one matching pair of tags, so the output always nests;
markers that cannot be paired stay as literal text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from botkit import split_text

__all__ = ["Piece", "markdown_to_html", "render_pieces", "shown_length", "utf16_len"]

_FENCE_OPEN = re.compile(r"^\s*```\s*([\w+#.-]*)\s*$")
_FENCE_CLOSE = re.compile(r"^\s*```\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*([^()\s]*(?:\([^()\s]*\)[^()\s]*)*)\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|tg)://[^>\s]+)>")
_EMPHASIS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), "b"),
    (re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)"), "b"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), "s"),
    (re.compile(r"\|\|(?=\S)(.+?)(?<=\S)\|\|"), "tg-spoiler"),
    (re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])"), "i"),
    (re.compile(r"(?<![_\w])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![_\w])"), "i"),
)
_TAG = re.compile(r"<(/?)(b|i|s|u|a|code|pre|blockquote|tg-spoiler)\b[^>]*>")
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_ANY_TAG = re.compile(r"<[^>]*>")
_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")


@dataclass(frozen=True, slots=True)
class Piece:
    """One message's worth of a reply.

    Attributes:
        source: the reply's own text for this piece (sent as is when HTML is refused).
        body: what to send: Telegram HTML when ``parse_mode`` is ``"HTML"``, else ``source``.
        parse_mode: ``"HTML"`` or ``None`` for plain text.
    """

    source: str
    body: str
    parse_mode: str | None


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def shown_length(body: str, parse_mode: str | None) -> int:
    """The length Telegram checks against 4096: the text after entity parsing, in UTF-16
    units (tags do not count, ``&amp;`` is one character)."""
    if parse_mode == "HTML":
        body = html.unescape(_ANY_TAG.sub("", body))
    return utf16_len(body)


def render_pieces(text: str, *, markdown: bool, limit: int) -> list[Piece]:
    """Split a reply and render each piece, each at most ``limit`` long as Telegram counts.

    The split happens on the Markdown (paragraphs, sentences, code blocks closed and
    reopened by :func:`botkit.split_text`, which counts code points); a piece that renders
    longer than ``limit`` UTF-16 units after entity parsing (emoji count twice, a rule
    grows) is split again, smaller.
    """
    render: Callable[[str], str] = markdown_to_html if markdown else _identity
    pieces: list[Piece] = []
    for source in split_text(text, limit):
        pieces.extend(_fit(source, limit, render, "HTML" if markdown else None))
    return pieces


def _identity(text: str) -> str:
    return text


def _fit(source: str, limit: int, render: Callable[[str], str], mode: str | None) -> list[Piece]:
    body = render(source)
    size = shown_length(body, mode)
    if size <= limit:
        return [Piece(source, body, mode)]
    target = min(int(len(source) * limit / size * 0.9), len(source) - 1)
    if target < 16:  # nothing this small renders beyond a real limit; send it plain
        return [Piece(source, source, None)]
    out: list[Piece] = []
    for part in split_text(source, target):
        out.extend(_fit(part, limit, render, mode))
    return out


def markdown_to_html(text: str) -> str:
    """Render Markdown as Telegram HTML: bold, italic, strike, spoilers, inline code,
    fenced code blocks (with their language), links, headings, lists and quotes."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE_OPEN.match(line)
        if fence is not None:
            body: list[str] = []
            i += 1
            while i < len(lines) and not _FENCE_CLOSE.match(lines[i]):
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence, or past the end when the block never closed
            code = html.escape("\n".join(body), quote=False)
            lang = fence.group(1)
            out.append(
                f'<pre><code class="language-{lang}">{code}</code></pre>'
                if lang
                else f"<pre>{code}</pre>"
            )
            continue
        if _QUOTE.match(line):
            quoted: list[str] = []
            while i < len(lines) and (m := _QUOTE.match(lines[i])) is not None:
                quoted.append(_inline(m.group(1)))
                i += 1
            out.append("<blockquote>" + "\n".join(quoted) + "</blockquote>")
            continue
        out.append(_block_line(line))
        i += 1
    return "\n".join(out)


def _block_line(line: str) -> str:
    if _RULE.match(line):
        return "──────────"
    heading = _HEADING.match(line)
    if heading is not None:
        return f"<b>{_inline(heading.group(1))}</b>"
    bullet = _BULLET.match(line)
    if bullet is not None:
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(line)


def _inline(text: str) -> str:
    """Inline Markdown to HTML; code spans and links are set aside first so emphasis
    markers inside them (``snake_case`` names, URLs) stay untouched."""
    stash: list[str] = []

    def keep(fragment: str) -> str:
        stash.append(fragment)
        return f"\x00{len(stash) - 1}\x00"

    def code(m: re.Match[str]) -> str:
        return keep(f"<code>{html.escape(m.group(2).strip(), quote=False)}</code>")

    def link(m: re.Match[str]) -> str:
        label, url = m.group(1), m.group(2)
        if not url.lower().startswith(_SAFE_SCHEMES):
            return m.group(0)
        return keep(f'<a href="{html.escape(url, quote=True)}">{_emphasis(label)}</a>')

    def autolink(m: re.Match[str]) -> str:
        url = m.group(1)
        return keep(f'<a href="{html.escape(url, quote=True)}">{html.escape(url)}</a>')

    text = _CODE_SPAN.sub(code, text)
    text = _AUTOLINK.sub(autolink, text)
    text = _LINK.sub(link, text)
    rendered = _emphasis(text)
    while _PLACEHOLDER.search(rendered):
        rendered = _PLACEHOLDER.sub(lambda m: stash[int(m.group(1))], rendered)
    return rendered


def _emphasis(text: str) -> str:
    """Escape, then pair emphasis markers; placeholders pass through untouched."""
    text = html.escape(text, quote=False)
    for pattern, tag in _EMPHASIS:

        def wrap(m: re.Match[str], tag: str = tag) -> str:
            inner = m.group(1)
            return f"<{tag}>{inner}</{tag}>" if _balanced(inner) else m.group(0)

        text = pattern.sub(wrap, text)
    return text


def _balanced(fragment: str) -> bool:
    stack: list[str] = []
    for m in _TAG.finditer(fragment):
        closing, name = m.group(1), m.group(2)
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack
