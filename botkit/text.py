"""Splitting long replies into pieces a channel accepts, without breaking code blocks."""

from __future__ import annotations

import re

__all__ = ["split_text"]

_SENTENCE_END = re.compile(r"(?<=[.!?…。])\s+")
_FENCE = "```"


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, in order.

    Cuts prefer, in this order: a blank line (paragraph), a line break, the end of a
    sentence, a space, and only then the middle of a word. A fenced code block
    (````` ``` `````) cut in two is closed at the end of one piece and reopened, with its
    language, at the start of the next, so each piece renders on its own.

    Args:
        text: the whole reply.
        limit: the channel's maximum message length, in characters (at least 16).

    Returns:
        The pieces; ``[text]`` when it already fits, ``[]`` for an empty text.
    """
    if limit < 16:
        raise ValueError("limit must be at least 16 characters")
    if not text:
        return []
    pieces: list[str] = []
    rest = text
    reopen = ""
    while rest:
        rest = reopen + rest
        if len(rest) <= limit:
            pieces.append(rest)
            break
        # leave room for a closing fence should the cut fall inside a code block
        room = limit - (len(_FENCE) + 1)
        cut = _best_cut(rest, room)
        piece = rest[:cut].rstrip()
        rest = rest[cut:].lstrip("\n ") if cut < len(rest) else ""
        fence = _open_fence(piece)
        if fence is not None:
            piece = piece + "\n" + _FENCE
            reopen = fence + "\n"
        else:
            reopen = ""
        if piece.strip():
            pieces.append(piece)
    return pieces


def _best_cut(text: str, room: int) -> int:
    window = text[:room]
    floor = room // 3  # never make a piece that is mostly empty
    for at in (
        window.rfind("\n\n"),
        window.rfind("\n"),
        _last_sentence_end(window),
        window.rfind(" "),
    ):
        if at > floor:
            return at
    return room


def _last_sentence_end(window: str) -> int:
    ends = [m.start() for m in _SENTENCE_END.finditer(window)]
    return ends[-1] if ends else -1


def _open_fence(piece: str) -> str | None:
    """The opening fence line (with its language) if ``piece`` ends inside a code block."""
    opening: str | None = None
    for line in piece.splitlines():
        stripped = line.strip()
        if stripped.startswith(_FENCE):
            opening = None if opening is not None else stripped
    return opening
