"""Markdown to HTML for the page, safely: every character of the text is escaped, and the
only tags in the result are the few this module writes itself.

The subset is what chat models write: paragraphs and line breaks, ``#`` headings,
``-``/``*``/``1.`` lists, ``>`` quotes, fenced and inline code, ``**bold**``,
``*italic*``/``_italic_``, ``~~struck~~``, ``[links](https://...)`` and bare URLs. A link
goes only to ``http``, ``https`` or ``mailto`` URLs; anything else stays text. Text cut
off mid-answer (an open code fence while streaming) renders as far as it goes. No HTML
the model or a person writes is ever passed through: ``<script>`` shows as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

__all__ = ["render", "render_plain"]

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"^\s{0,3}[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s{0,3}\d{1,9}[.)]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# on escaped text: the URL stops at whitespace and at what escaping made of < > " '
_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*([^()\s]+)\s*\)")
# (what escaping made of " ' < > ends a bare URL, as the characters would have)
_BARE_URL = re.compile(r"(?<![\w/])(https?://(?:(?!&(?:quot|lt|gt|#x27);)[^\s\x00])+)")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EM = re.compile(
    r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"  # *italic*
    r"|(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"  # _italic_, not snake_case
)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_SAFE_SCHEME = re.compile(r"^(https?://|mailto:)", re.IGNORECASE)
_TRAILING = ".,:!?)"  # not ';', which ends an escaped entity such as &amp;
# placeholders for finished pieces (code, links), so later rules cannot reach inside them
_HOLD = "\x00"


def render_plain(text: str) -> str:
    """Plain text as HTML: escaped, paragraphs at blank lines, line breaks kept."""
    out = []
    for paragraph in re.split(r"\n\s*\n", _clean(text)):
        if paragraph.strip():
            lines = paragraph.strip("\n").split("\n")
            out.append("<p>" + "<br>".join(_escape(line) for line in lines) + "</p>")
    return "".join(out)


def render(text: str) -> str:
    """Markdown as HTML, in the safe subset this module describes."""
    return "".join(_blocks(_clean(text).split("\n")))


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace(_HOLD, "\ufffd")


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _blocks(lines: list[str]) -> Iterator[str]:
    i = 0
    paragraph: list[str] = []

    def flush() -> Iterator[str]:
        if paragraph:
            yield "<p>" + "<br>".join(_inline(line.strip()) for line in paragraph) + "</p>"
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            yield from flush()
            end = i + 1
            while end < len(lines) and not lines[end].lstrip().startswith(fence.group(1)):
                end += 1
            code = "\n".join(lines[i + 1 : end])
            yield f"<pre><code>{_escape(code)}</code></pre>"
            i = end + 1
            continue
        if not line.strip():
            yield from flush()
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            yield from flush()
            level = min(len(heading.group(1)) + 2, 6)  # the page's own title is the h1
            yield f"<h{level}>{_inline(heading.group(2))}</h{level}>"
            i += 1
            continue
        if _RULE.match(line):
            yield from flush()
            yield "<hr>"
            i += 1
            continue
        for pattern, tag in ((_BULLET, "ul"), (_NUMBERED, "ol"), (_QUOTE, "blockquote")):
            if pattern.match(line):
                yield from flush()
                items, i = _take(lines, i, pattern)
                if tag == "blockquote":
                    yield f"<blockquote>{''.join(_blocks(items))}</blockquote>"
                else:
                    yield (
                        f"<{tag}>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + f"</{tag}>"
                    )
                break
        else:
            paragraph.append(line)
            i += 1
    yield from flush()


def _take(lines: list[str], i: int, pattern: re.Pattern[str]) -> tuple[list[str], int]:
    """The run of lines from ``i`` that ``pattern`` matches, unwrapped; and where it ends."""
    items: list[str] = []
    while i < len(lines):
        found = pattern.match(lines[i])
        if not found:
            break
        items.append(found.group(1))
        i += 1
    return items, i


def _inline(text: str) -> str:
    held: list[str] = []

    def hold(piece: str) -> str:
        held.append(piece)
        return f"{_HOLD}{len(held) - 1}{_HOLD}"

    # code first: nothing inside it is Markdown; then escape everything else
    pieces = []
    last = 0
    for found in _CODE_SPAN.finditer(text):
        pieces.append(_escape(text[last : found.start()]))
        pieces.append(hold(f"<code>{_escape(found.group(2).strip())}</code>"))
        last = found.end()
    pieces.append(_escape(text[last:]))
    out = "".join(pieces)
    out = _LINK.sub(lambda m: _link(m, hold), out)
    out = _BARE_URL.sub(lambda m: _bare(m, hold), out)
    out = _STRONG.sub(r"<strong>\2</strong>", out)
    out = _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", out)
    out = _STRIKE.sub(r"<del>\1</del>", out)
    return re.sub(f"{_HOLD}(\\d+){_HOLD}", lambda m: held[int(m.group(1))], out)


def _link(found: re.Match[str], hold: Callable[[str], str]) -> str:
    label, url = found.group(1), found.group(2)
    if not _SAFE_SCHEME.match(url):
        return found.group(0)  # a javascript: or relative link stays text
    return hold(_anchor(url, label))


def _bare(found: re.Match[str], hold: Callable[[str], str]) -> str:
    url = found.group(1)
    cut = len(url)
    while cut and url[cut - 1] in _TRAILING:
        cut -= 1
    return hold(_anchor(url[:cut], url[:cut])) + url[cut:]


def _anchor(url: str, label: str) -> str:
    # url and label are already escaped, quotes included: nothing leaves the attribute
    return f'<a href="{url}" target="_blank" rel="noopener noreferrer nofollow">{label}</a>'
