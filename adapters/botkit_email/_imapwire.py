"""Reading IMAP response data (RFC 3501 section 4 and 9): atoms, quoted strings, literals,
NIL and parenthesised lists, and the FETCH responses aioimaplib hands over in pieces.

aioimaplib splits a response at each literal: the text up to ``{n}``, then the literal's
bytes, then the text after it. :func:`fetch_responses` puts them back together and parses
each ``* n FETCH (...)`` into its items (``UID``, ``BODYSTRUCTURE``, ``BODY[1.MIME]``...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Atom", "FetchResponse", "ImapSyntaxError", "Value", "fetch_responses", "parse_values"]

#: An atom (``UID``, ``123``, ``BODY[1.MIME]``), kept apart from a string that reads the same.
Atom = str
#: A parsed value: an atom (``str``), a string (``bytes``: quoted or literal), ``None``
#: for ``NIL``, or a parenthesised list of values.
Value = str | bytes | None | list["Value"]

_MAX_DEPTH = 200  # far deeper than any real MIME tree; keeps recursion bounded
_ATOM_END = frozenset(b' ()"{\r\n')
_FETCH = re.compile(rb"(?:\* )?(\d+) FETCH ", re.IGNORECASE)
_LITERAL = re.compile(rb"~?\{(\d+)\+?\}\r\n")


class ImapSyntaxError(ValueError):
    """Response data that does not follow the IMAP grammar."""


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """One ``* n FETCH (...)``: the message's sequence number and its items, by name
    in upper case (``BODY[1.MIME]``, ``RFC822.SIZE``)."""

    number: int
    items: dict[str, Value]

    @property
    def uid(self) -> int | None:
        """The ``UID`` item, when the response has one."""
        value = self.items.get("UID")
        return int(value) if isinstance(value, str) and value.isdigit() else None


def parse_values(data: bytes) -> list[Value]:
    """Every value in ``data`` (separated by spaces).

    Raises:
        ImapSyntaxError: ``data`` is not a sequence of IMAP values.
    """
    reader = _Reader(data)
    values: list[Value] = []
    while True:
        reader.skip_spaces()
        if reader.at_end():
            return values
        values.append(reader.value(0))


def fetch_responses(lines: Sequence[bytes | bytearray]) -> list[FetchResponse]:
    """The FETCH responses in aioimaplib's ``Response.lines`` (its last line, the tagged
    completion text, and untagged responses other than FETCH are left out).

    Raises:
        ImapSyntaxError: a FETCH response that cannot be parsed.
    """
    responses: list[FetchResponse] = []
    for chunk in _rejoin(lines[:-1]):
        found = _FETCH.match(chunk)
        if found is None:
            continue
        values = parse_values(chunk[found.end() :])
        if len(values) != 1 or not isinstance(values[0], list):
            raise ImapSyntaxError(f"FETCH data is not one list: {_excerpt(chunk)}")
        items = values[0]
        if len(items) % 2:
            raise ImapSyntaxError(f"FETCH item without a value: {_excerpt(chunk)}")
        named: dict[str, Value] = {}
        for name, value in zip(items[::2], items[1::2], strict=True):
            if not isinstance(name, str):
                raise ImapSyntaxError(f"FETCH item name is not an atom: {name!r}")
            named[name.upper()] = value
        responses.append(FetchResponse(int(found.group(1)), named))
    return responses


def _rejoin(lines: Sequence[bytes | bytearray]) -> list[bytes]:
    """The responses as the server sent them: a literal (a ``bytearray``) goes back after
    the ``{n}`` line before it, and the text after it continues that response."""
    chunks: list[bytearray] = []
    after_literal = False
    for line in lines:
        if isinstance(line, bytearray):
            if not chunks:
                raise ImapSyntaxError("a literal with no response before it")
            chunks[-1] += b"\r\n" + line
            after_literal = True
        elif after_literal:
            chunks[-1] += line
            after_literal = False
        else:
            chunks.append(bytearray(line))
    return [bytes(chunk) for chunk in chunks]


def _excerpt(data: bytes, at: int = 0) -> str:
    return repr(data[max(at - 20, 0) : at + 40])


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def at_end(self) -> bool:
        return self._at >= len(self._data)

    def skip_spaces(self) -> None:
        while self._at < len(self._data) and self._data[self._at] == 0x20:
            self._at += 1

    def _fail(self, what: str) -> ImapSyntaxError:
        return ImapSyntaxError(f"{what} at byte {self._at}: {_excerpt(self._data, self._at)}")

    def value(self, depth: int) -> Value:
        if depth > _MAX_DEPTH:
            raise self._fail("lists nested too deeply")
        if self.at_end():
            raise self._fail("a value was expected")
        first = self._data[self._at]
        if first == 0x28:  # (
            return self._list(depth)
        if first == 0x22:  # "
            return self._quoted()
        if first == 0x7B or (first == 0x7E and self._data[self._at + 1 : self._at + 2] == b"{"):
            return self._literal()
        if first in _ATOM_END or first == 0x29:
            raise self._fail("unexpected character")
        atom = self._atom()
        return None if atom.upper() == "NIL" else atom

    def _list(self, depth: int) -> list[Value]:
        self._at += 1
        items: list[Value] = []
        while True:
            self.skip_spaces()
            if self.at_end():
                raise self._fail("unclosed list")
            if self._data[self._at] == 0x29:  # )
                self._at += 1
                return items
            items.append(self.value(depth + 1))

    def _quoted(self) -> bytes:
        out = bytearray()
        at = self._at + 1
        data = self._data
        while at < len(data):
            char = data[at]
            if char == 0x22:
                self._at = at + 1
                return bytes(out)
            if char == 0x5C:  # a backslash quotes the next character
                at += 1
                if at >= len(data):
                    break
                char = data[at]
            elif char in (0x0D, 0x0A):
                raise self._fail("line break in a quoted string")
            out.append(char)
            at += 1
        raise self._fail("unterminated quoted string")

    def _literal(self) -> bytes:
        found = _LITERAL.match(self._data, self._at)
        if found is None:
            raise self._fail("malformed literal")
        size = int(found.group(1))
        start = found.end()
        if start + size > len(self._data):
            raise self._fail(f"literal of {size} bytes is cut short")
        self._at = start + size
        return self._data[start : self._at]

    def _atom(self) -> Atom:
        """An atom; a ``[...]`` inside it (``BODY[HEADER.FIELDS (TO)]<0>``) is part of it."""
        data = self._data
        start = at = self._at
        while at < len(data) and data[at] not in _ATOM_END and data[at] != 0x29:
            if data[at] == 0x5B:  # [
                close = data.find(b"]", at)
                if close < 0:
                    raise self._fail("unclosed [ in an atom")
                at = close
            at += 1
        self._at = at
        try:
            return data[start:at].decode("ascii")
        except UnicodeDecodeError:
            raise self._fail("8-bit byte in an atom") from None
