"""Markdown to Slack mrkdwn and back: escaping, links, emphasis, and splitting to size.

Slack parses ``<…>`` (mentions, ``<!channel>``, links) and ``&…;`` entities in message
text, so everything that does not come from our own link syntax has ``&``, ``<`` and
``>`` escaped, exactly once: each piece is rendered from the original Markdown, never
from text that was rendered before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from botkit import Markup, split_text

__all__ = ["escape", "inbound_text", "render", "render_pieces"]

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE = re.compile(r"[&<>]")
_UNESCAPE = re.compile(r"&(amp|lt|gt);")
_UNESCAPES = {"amp": "&", "lt": "<", "gt": ">"}

_FENCE = re.compile(r"^\s*```")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<text>.*?)\s*#*\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_QUOTE = re.compile(r"^(?P<indent>\s{0,3})>\s?(?P<text>.*)$")
_BULLET = re.compile(r"^(?P<indent>\s*)[-*+]\s+(?P<text>.*)$")
_CODE_SPAN = re.compile(r"(`+)(?P<code>.+?)\1")
_LINK = re.compile(
    r"!?\[(?P<label>[^\]\n]+)\]\(\s*<?(?P<url>[^\s<>()]+(?:\([^\s()]*\))?[^\s<>()]*)>?"
    r"(?:\s+\"[^\"]*\")?\s*\)"
    r"|<(?P<auto>(?:https?://|mailto:)[^\s<>|]+)>"
)
_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_EMPHASIS = re.compile(
    r"(?P<bi>\*\*\*(?=\S)(?P<bi_t>.+?)(?<=\S)\*\*\*)"
    r"|(?P<b>\*\*(?=\S)(?P<b_t>.+?)(?<=\S)\*\*)"
    r"|(?P<bu>(?<!\w)__(?=\S)(?P<bu_t>.+?)(?<=\S)__(?!\w))"
    r"|(?P<s>~~(?=\S)(?P<s_t>.+?)(?<=\S)~~)"
    r"|(?P<i>(?<![\w*])\*(?=[^\s*])(?P<i_t>[^*]+?)(?<=\S)\*(?![\w*]))"
    r"|(?P<iu>(?<!\w)_(?=[^\s_])(?P<iu_t>[^_]+?)(?<=\S)_(?!\w))"
)
_MAX_REFITS = 12


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` the way Slack requires, once."""
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group()], text)


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: _UNESCAPES[m.group(1)], text)


def render(text: str, markup: Markup = "markdown") -> str:
    """Render a reply as Slack mrkdwn.

    ``**bold**`` becomes ``*bold*``, ``*it*`` and ``_it_`` become ``_it_``, ``~~s~~``
    becomes ``~s~``, ``[t](u)`` becomes ``<u|t>`` (http, https and mailto only; other
    schemes are shown as text), headings become bold lines, bullets ``•``; code blocks
    and code spans are kept (their language tag dropped, Slack shows it as code).
    Plain text is only escaped.
    """
    if markup == "plain":
        return escape(text)
    out: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            rest = line.strip()[3:]
            if in_code:
                in_code = False
                out.append("```")
            elif "```" in rest:  # ```one line of code```
                out.append("```" + escape(rest[: rest.index("```")]) + "```")
            else:
                in_code = True
                out.append("```")
            continue
        out.append(escape(line) if in_code else _render_line(line))
    return "\n".join(out)


def _render_line(line: str) -> str:
    if m := _HEADING.match(line):
        heading = m.group("text").replace("**", "").replace("__", "")
        return f"*{_inline(heading)}*" if heading.strip() else ""
    if _RULE.match(line):
        return "───"
    if m := _QUOTE.match(line):
        # a literal '>' at the start of a line is Slack's quote; it cannot open a '<…>'
        return f"{m.group('indent')}> {_render_line(m.group('text'))}"
    if m := _BULLET.match(line):
        return f"{m.group('indent')}• {_inline(m.group('text'))}"
    return _inline(line)


def _inline(text: str) -> str:
    """Code spans verbatim (escaped); links and emphasis converted elsewhere."""
    out: list[str] = []
    last = 0
    for m in _CODE_SPAN.finditer(text):
        out.append(_links(text[last : m.start()]))
        out.append("`" + escape(m.group("code").strip("`")) + "`")
        last = m.end()
    out.append(_links(text[last:]))
    return "".join(out)


def _links(text: str) -> str:
    out: list[str] = []
    last = 0
    for m in _LINK.finditer(text):
        out.append(_emphasis(escape(text[last : m.start()])))
        url = m.group("url") or m.group("auto")
        label = m.group("label")
        if url.startswith(_SAFE_SCHEMES):
            safe_url = escape(url).replace("|", "%7C")
            out.append(f"<{safe_url}|{_emphasis(escape(label))}>" if label else f"<{safe_url}>")
        else:
            shown = escape(f"{label} ({url})" if label else url)
            out.append(_emphasis(shown))
        last = m.end()
    out.append(_emphasis(escape(text[last:])))
    return "".join(out)


def _emphasis(text: str) -> str:
    """Markdown emphasis to mrkdwn; ``text`` is already escaped (escaping adds no markers)."""

    def swap(m: re.Match[str]) -> str:
        kind = m.lastgroup or ""
        inner = _emphasis(m.group(f"{kind}_t"))
        if kind == "bi":
            return f"*_{inner}_*"
        if kind in ("b", "bu"):
            return f"*{inner}*"
        if kind == "s":
            return f"~{inner}~"
        return f"_{inner}_"

    return _EMPHASIS.sub(swap, text)


def render_pieces(text: str, markup: Markup, limit: int) -> list[str]:
    """Split ``text`` and render each piece so that no rendered piece exceeds ``limit``.

    The Markdown is split first (``botkit.split_text``: paragraphs, lines, sentences,
    code blocks closed and reopened), each piece rendered on its own; a piece that
    grew past ``limit`` when rendered (escaping makes ``&`` five characters) is split
    again, smaller. Pieces come back in order.
    """
    pieces: list[str] = []
    for chunk in split_text(text, limit):
        pieces.extend(_fit(chunk, markup, limit, _MAX_REFITS))
    return [p for p in pieces if p.strip()]


def _fit(chunk: str, markup: Markup, limit: int, budget: int) -> list[str]:
    rendered = render(chunk, markup)
    if len(rendered) <= limit:
        return [rendered]
    smaller = min(len(chunk) - 1, int(len(chunk) * limit / len(rendered) * 0.9))
    if budget <= 0 or smaller < 16:
        # cannot happen for sane limits; never send more than Slack shows
        return [rendered[i : i + limit] for i in range(0, len(rendered), limit)]
    out: list[str] = []
    for sub in split_text(chunk, smaller):
        out.extend(_fit(sub, markup, limit, budget - 1))
    return out


_ANGLE = re.compile(r"<(?P<body>[^<>\n]*)>")


def inbound_text(
    text: str,
    *,
    bot_user_id: str,
    user_name: Callable[[str], str | None] | Mapping[str, str] = lambda _id: None,
) -> str:
    """A Slack message's text as the model should read it.

    The bot's own mention is removed; other mentions become ``@name``, channel links
    ``#name``, ``<!here>`` ``@here``, links ``[label](url)`` or the bare URL; entities are
    unescaped once.

    Args:
        text: the ``text`` field of a Slack event.
        bot_user_id: the bot's user id, whose mention is dropped.
        user_name: display names known for user ids.
    """
    lookup = user_name.get if isinstance(user_name, Mapping) else user_name

    def swap(m: re.Match[str]) -> str:
        body = m.group("body")
        target, _, label = body.partition("|")
        if target.startswith("@"):
            user = target[1:]
            name = label or lookup(user) or user
            return "@" + name
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            special = target[1:].split("^", 1)[0]
            if special in ("here", "channel", "everyone"):
                return "@" + special
            return label or special
        if label and label != target:
            return f"[{label}]({target})"
        return target

    own = (
        re.compile(rf"[ \t]*<@{re.escape(bot_user_id)}(?:\|[^<>]*)?>[ \t]?")
        if bot_user_id
        else None
    )
    without_own = own.sub(" ", text) if own else text
    return _unescape(_ANGLE.sub(swap, without_own)).strip()
