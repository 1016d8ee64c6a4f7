"""The Markdown models write, as a small, safe HTML part for email (no dependency).

Covers what chat models actually produce: paragraphs, ``#`` headings, bullet and
numbered lists, ``>`` quotes, fenced code, rules, ``**bold**``, ``*italic*``,
```code```, ``[links](https://...)``. Everything is escaped first, so the model's
text can never inject markup.
"""

from __future__ import annotations

import re
from html import escape

__all__ = ["looks_like_markdown", "markdown_to_html"]

_SIGNS = re.compile(
    r"(\*\*[^*\n]+\*\*|__[^_\n]+__|`[^`\n]+`|^```|^#{1,6}\s|^\s*[-*+]\s+\S|^\s*\d+[.)]\s+\S"
    r"|\[[^\]\n]+\]\([^)\s]+\)|^>\s)",
    re.MULTILINE,
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
_FENCE = re.compile(r"^\s*```")


def looks_like_markdown(text: str) -> bool:
    """Whether the text uses Markdown that is worth an HTML part."""
    return bool(_SIGNS.search(text))


def markdown_to_html(text: str) -> str:
    """A complete, self-contained HTML document for the Markdown ``text``."""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    paragraph: list[str] = []
    i = 0

    def flush() -> None:
        if paragraph:
            out.append("<p>" + "<br>\n".join(_inline(p) for p in paragraph) + "</p>")
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            flush()
            code: list[str] = []
            i += 1
            while i < len(lines) and not _FENCE.match(lines[i]):
                code.append(lines[i])
                i += 1
            out.append("<pre><code>" + escape("\n".join(code)) + "</code></pre>")
            i += 1
            continue
        if not line.strip():
            flush()
        elif heading := _HEADING.match(line):
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif _RULE.match(line):
            flush()
            out.append("<hr>")
        elif line.lstrip().startswith(">"):
            flush()
            quoted: list[str] = []
            while i < len(lines) and lines[i].lstrip().startswith(">"):
                quoted.append(lines[i].lstrip()[1:].removeprefix(" "))
                i += 1
            out.append("<blockquote>" + markdown_to_html_fragment(quoted) + "</blockquote>")
            continue
        elif _BULLET.match(line) or _NUMBERED.match(line):
            flush()
            ordered = _BULLET.match(line) is None
            pattern = _NUMBERED if ordered else _BULLET
            items: list[str] = []
            while i < len(lines) and (found := pattern.match(lines[i])):
                items.append(f"<li>{_inline(found.group(1))}</li>")
                i += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(items) + f"</{tag}>")
            continue
        else:
            paragraph.append(line.strip())
        i += 1
    flush()
    body = "\n".join(out)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
        f'<body style="font-family: sans-serif; line-height: 1.4">\n{body}\n</body></html>\n'
    )


def markdown_to_html_fragment(lines: list[str]) -> str:
    """The body of :func:`markdown_to_html` for some lines (used for nested quotes)."""
    document = markdown_to_html("\n".join(lines))
    start = document.index("\n", document.index("<body")) + 1
    return document[start : document.rindex("\n</body>")]


_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(
    r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])|(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)"
)


def _inline(text: str) -> str:
    """Inline Markdown to HTML; code spans are protected from the other rules."""
    codes: list[str] = []

    def keep_code(found: re.Match[str]) -> str:
        codes.append(f"<code>{escape(found.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = _CODE.sub(keep_code, text)
    text = escape(text, quote=False)
    # The text is escaped already; a quote is all that could still end the attribute.
    text = _LINK.sub(
        lambda m: f'<a href="{m.group(2).replace(chr(34), "&quot;")}">{m.group(1)}</a>', text
    )
    text = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", text)
    text = _ITALIC.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)
