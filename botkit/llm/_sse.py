"""Server-sent events, parsed per event whatever the network's chunking.

Follows the WHATWG event-stream rules: lines end in ``\\r\\n``, ``\\n`` or ``\\r``; a
blank line ends an event; ``:`` lines are comments; ``data:`` lines of one event are
joined with ``\\n``; one space after the colon is dropped. Bytes may split a line or a
UTF-8 character anywhere. OpenAI's ``data: [DONE]`` ends the stream.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["DONE", "SSEEvent", "SSEParser"]

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Turns a byte stream into events; feed it chunks as they arrive.

    After an event whose data is ``[DONE]``, :attr:`done` is true and further input is
    ignored (the ``[DONE]`` event itself is not returned).
    """

    __slots__ = ("_buffer", "_data", "_decoder", "_event", "_id", "_started", "done")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._started = False
        self.done = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk``; return the events it completed, in order."""
        if self.done:
            return []
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        return self._lines(self._buffer + text, final=False)

    def close(self) -> list[SSEEvent]:
        """End of input: return what complete lines still make up.

        An event whose lines all arrived but whose closing blank line did not is still
        dispatched; a last line cut off in the middle is dropped, since it may be half
        of a JSON document.
        """
        if self.done:
            return []
        rest = self._buffer + self._decoder.decode(b"", final=True)
        events = self._lines(rest, final=True)
        if self._data:  # (a [DONE] event cleared it)
            events.extend(self._dispatch())
        return events

    def _lines(self, text: str, *, final: bool) -> list[SSEEvent]:
        """Process every complete line of ``text``, keeping the unfinished rest."""
        events: list[SSEEvent] = []
        pos = 0
        length = len(text)
        while pos < length:
            cr = text.find("\r", pos)
            lf = text.find("\n", pos)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, after = lf, lf + 1
            elif cr + 1 < length:
                end, after = cr, cr + 2 if text[cr + 1] == "\n" else cr + 1
            elif final:
                end, after = cr, cr + 1
            else:
                break  # a "\r" at the very end may be the first half of "\r\n"
            events.extend(self._line(text[pos:end]))
            pos = after
            if self.done:
                self._buffer = ""
                return events
        # an unterminated last line at the end of input is dropped (see close())
        self._buffer = "" if final else text[pos:]
        return events

    def _line(self, line: str) -> list[SSEEvent]:
        """Apply one line to the event being built; a blank line dispatches it."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return []
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields do not concern a client that never reconnects
        return []

    def _dispatch(self) -> list[SSEEvent]:
        """End the current event; an event without data is not dispatched."""
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return []
        joined = "\n".join(data)
        if joined == DONE:
            self.done = True
            return []
        return [SSEEvent(joined, event or "message", self._id)]
