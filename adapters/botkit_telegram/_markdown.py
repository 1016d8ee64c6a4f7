"""Markdown (what models write) to Telegram text plus entities, in pieces that fit.

A reply is sent as plain ``text`` with a list of ``MessageEntity`` (bold, code, links…),
never with a ``parse_mode``: Telegram has nothing left to parse, so no reply can fail
with "can't parse entities". ``telegramify-markdown`` parses the Markdown as CommonMark
(tables, nested emphasis, escapes, both fence kinds, links with parentheses); this module
keeps only what Telegram accepts and splits long replies on UTF-16 lengths, cutting an
entity that crosses a split into both pieces with its offsets re-based.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import MessageEntity as TgEntity
from telegramify_markdown import MessageEntity, RenderConfig, convert, split_entities, utf16_len

__all__ = ["Piece", "render_pieces", "utf16_len"]

_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")
# a line opening or closing a fenced code block, inside quotes and lists too
_FENCE = re.compile(r"^[\s>*+\-\d.]*?(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+).+?(?<!`)\1(?!`)")
# "<" that CommonMark would read as the start of raw HTML; autolinks (<https://…>) stay
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])(?![A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*>)")
_QUOTES = frozenset({"blockquote", "expandable_blockquote"})
_FORMATTING = frozenset({"bold", "italic", "underline", "strikethrough", "spoiler"})


@dataclass(frozen=True, slots=True)
class Piece:
    """One message's worth of a reply.

    Attributes:
        text: what the message shows.
        entities: its formatting; offsets and lengths count UTF-16 code units of ``text``.
    """

    text: str
    entities: tuple[MessageEntity, ...] = ()

    def telegram_entities(self) -> list[TgEntity] | None:
        """The entities as python-telegram-bot objects (``None`` when there are none)."""
        if not self.entities:
            return None
        return [
            TgEntity(
                e.type,
                e.offset,
                e.length,
                url=e.url,
                language=e.language,
                custom_emoji_id=e.custom_emoji_id,
            )
            for e in self.entities
        ]


def render_pieces(text: str, *, markdown: bool, limit: int) -> list[Piece]:
    """Render a reply and split it into pieces of at most ``limit`` UTF-16 units each.

    Splits fall after a line break where one fits, else inside the line (only a line
    longer than ``limit`` is cut there). Line breaks at a piece's start and whitespace
    at its end are dropped, entities clipped to what is left; a piece of nothing but
    whitespace is left out (Telegram refuses an empty text).

    Args:
        text: the reply.
        markdown: render it as Markdown; ``False`` sends it as written.
        limit: the longest piece, in UTF-16 code units (Telegram's 4096).
    """
    if markdown:
        shown, entities = convert(_literal_html(text), config=_config())
        entities = _acceptable(entities)
    else:
        shown, entities = text, []
    pieces = (
        _trimmed(chunk, chunk_entities)
        for chunk, chunk_entities in split_entities(shown, entities, limit)
    )
    return [piece for piece in pieces if piece.text]


def _literal_html(markdown: str) -> str:
    """``markdown`` with raw HTML escaped outside code, so ``<this>`` shows as written.

    CommonMark passes HTML through for a browser, and telegramify drops it (a ``<div>``
    block with all its lines): in a model's answer ``<placeholder>`` means the text.
    """
    out: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        opened = _FENCE.match(line)
        if fence is not None:
            if (
                opened is not None
                and opened.group(1)[0] == fence[0]
                and len(opened.group(1)) >= len(fence)
                and not line[opened.end() :].strip()
            ):
                fence = None
            out.append(line)
            continue
        if opened is not None:
            fence = opened.group(1)
            out.append(line)
            continue
        pieces, at = [], 0
        for span in _CODE_SPAN.finditer(line):
            pieces.append(_TAG_START.sub(r"\\<", line[at : span.start()]))
            pieces.append(span.group(0))
            at = span.end()
        pieces.append(_TAG_START.sub(r"\\<", line[at:]))
        out.append("".join(pieces))
    return "\n".join(out)


def _config() -> RenderConfig:
    """telegramify's defaults, less the emoji it puts before headings."""
    config = RenderConfig.isolated()
    symbols = config.markdown_symbol
    symbols.heading_level_1 = symbols.heading_level_2 = ""
    symbols.heading_level_3 = symbols.heading_level_4 = ""
    return config


def _acceptable(entities: list[MessageEntity]) -> list[MessageEntity]:
    """What Telegram takes: no empty entities, no link to a scheme it refuses (the label
    stays as text), and only entities that nest as the Bot API allows (a quote inside a
    quote, a link around code: the outer one is kept)."""
    kept: list[MessageEntity] = []
    for entity in sorted(entities, key=lambda e: (e.offset, -e.length)):
        if entity.length <= 0:
            continue
        if entity.type == "text_link" and not (entity.url or "").lower().startswith(_SAFE_SCHEMES):
            continue
        if all(_nests(outer, entity) for outer in kept):
            kept.append(entity)
    return kept


def _nests(outer: MessageEntity, inner: MessageEntity) -> bool:
    """``inner`` (starting no earlier) may stand beside or inside ``outer``."""
    end, inner_end = outer.offset + outer.length, inner.offset + inner.length
    if inner.offset >= end:
        return True
    if inner_end > end:
        return False  # they would cross
    if (outer.offset, end) == (inner.offset, inner_end) and _may_contain(inner.type, outer.type):
        return True
    return _may_contain(outer.type, inner.type)


def _may_contain(outer: str, inner: str) -> bool:
    """The Bot API's rules: ``pre`` and ``code`` contain nothing; bold, italic, underline,
    strikethrough and spoiler contain and are part of anything else; quotes do not nest;
    no other entity contains another."""
    if outer in ("pre", "code"):
        return False
    if outer in _FORMATTING or inner in _FORMATTING:
        return True
    return outer in _QUOTES and inner not in _QUOTES


def _trimmed(text: str, entities: list[MessageEntity]) -> Piece:
    """The piece without line breaks at its start and whitespace at its end, its entities
    re-based on what is left and clipped to it."""
    start = len(text) - len(text.lstrip("\n"))
    body = text[start:].rstrip()
    shift = utf16_len(text[:start])
    size = utf16_len(body)
    kept: list[MessageEntity] = []
    for entity in entities:
        begin = max(entity.offset - shift, 0)
        end = min(entity.offset + entity.length - shift, size)
        if end > begin:
            kept.append(entity.copy_with(offset=begin, length=end - begin))
    return Piece(body, tuple(kept))
