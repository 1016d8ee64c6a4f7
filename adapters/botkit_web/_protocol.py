"""What the page and the server say over the socket.

The page sends one kind of frame, a message::

    {"type": "message", "id": "k3j9x", "text": "hello"}

``id`` (1-64 letters, digits, ``-``, ``_``; optional) is the page's own name for the
message: sending it again (after a reconnect) is recognised and answered once.

The server sends, as JSON objects:

- ``{"type": "history", "messages": [...]}`` first, the conversation so far;
- ``{"type": "accepted", "id": ...}`` once a message is stored (and will be answered);
- ``{"type": "message", "id": ..., "role": "user" | "bot", ...}``: a message to show, or
  to show anew where one with that id is shown (a reply being written grows this way);
  a bot message carries ``html`` (rendered here, escaped), a person's carries ``text``;
- ``{"type": "typing"}`` while an answer is being prepared;
- ``{"type": "error", "error": "...", "id": ..., "retry": bool}``: a frame was refused
  (``retry``: not the message's fault; the page sends it again after reconnecting).

:func:`read_frame` decides about one frame from the page without side effects.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from botkit_web._markdown import render, render_plain

__all__ = ["Refusal", "Said", "bot_frame", "read_frame", "user_frame"]

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Said:
    """A message from the page, ready to be accepted."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A frame refused, and why (said back to the page)."""

    error: str
    id: str | None = None


def read_frame(data: str, *, max_chars: int) -> Said | Refusal:
    """Decide about one text frame from the page."""
    try:
        frame: Any = json.loads(data)
    except (ValueError, RecursionError):
        frame = None
    if not isinstance(frame, dict):
        return Refusal('frames must be JSON objects: {"type": "message", "text": "..."}')
    kind = frame.get("type")
    if kind != "message":
        return Refusal(f"unknown frame type {kind!r}; send {{'type': 'message', ...}}")
    given = frame.get("id")
    if given is not None and not (isinstance(given, str) and _ID.match(given)):
        return Refusal("id must be 1-64 letters, digits, '-' or '_'")
    message_id = given if given is not None else uuid.uuid4().hex
    text = frame.get("text")
    if not isinstance(text, str):
        return Refusal("text must be a string", message_id)
    if not text.strip():
        return Refusal("the message is empty", message_id)
    if len(text) > max_chars:
        return Refusal(
            f"the message is too long: {len(text)} characters, at most {max_chars}", message_id
        )
    if "\x00" in text:
        return Refusal("the message contains a NUL character", message_id)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") that JSON let through
        return Refusal("the message is not valid Unicode text", message_id)
    return Said(message_id, text)


def user_frame(element: str, text: str) -> dict[str, Any]:
    """A person's message to show: as text, which the page never reads as HTML."""
    return {"type": "message", "id": element, "role": "user", "text": text}


def bot_frame(element: str, text: str, markup: str) -> dict[str, Any]:
    """A reply to show: its Markdown rendered here, every character of it escaped."""
    rendered = render(text) if markup == "markdown" else render_plain(text)
    return {"type": "message", "id": element, "role": "bot", "html": rendered}
