"""A prompt's messages with their JSON made ahead of the request (``EncodedMessages``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

import orjson

# what botkit.llm.types calls ChatMessage (that module imports this one)
ChatMessage = dict[str, Any]

__all__ = ["EncodedMessages", "encode"]


class EncodedMessages(Sequence[ChatMessage]):
    """Chat messages that come with their wire form, a JSON array, already made.

    A long conversation's turns do not change once settled, so the history cache
    (``botkit.history_cache``) encodes each turn once, when it keeps it, and keeps the
    conversation's encoded turns in one buffer; a request's body then copies that buffer
    instead of encoding two hundred turns again on every answer (and the turns are not
    walked to build the list at all: the messages are made on first use, which most
    requests never need).

    Immutable like a tuple, so the JSON always says what the messages say (a
    ``ChatRequest`` keeps it as it is, instead of copying it into a tuple). Anything that
    wants other messages builds a new sequence; the dicts themselves must not be changed
    in place (they are the cache's).
    """

    __slots__ = ("_items", "_length", "_make", "json")

    def __init__(self, json: bytes, length: int, make: Callable[[], list[ChatMessage]]) -> None:
        """``json``: the messages' JSON array; ``length``: how many there are; ``make``:
        returns them, in order (called once, when they are first looked at)."""
        self.json = json
        self._length = length
        self._make: Callable[[], list[ChatMessage]] | None = make
        self._items: tuple[ChatMessage, ...] | None = None

    def _messages(self) -> tuple[ChatMessage, ...]:
        if self._items is None:
            assert self._make is not None
            self._items = tuple(self._make())
            assert len(self._items) == self._length, "EncodedMessages: length and messages differ"
            self._make = None  # what it held (the cache's turns) may go
        return self._items

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> ChatMessage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ChatMessage]: ...

    def __getitem__(self, index: int | slice) -> ChatMessage | Sequence[ChatMessage]:
        return self._messages()[index]

    def __iter__(self) -> Iterator[ChatMessage]:
        return iter(self._messages())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (EncodedMessages, list, tuple)):
            return list(self._messages()) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a list of dicts

    def __repr__(self) -> str:
        return f"EncodedMessages({list(self._messages())!r})"


def encode(value: Any) -> bytes:
    """``value`` as JSON, as a request's body is written (orjson; the read-only containers
    a frozen request may hold written as objects and arrays)."""
    return orjson.dumps(value, default=_jsonable)


def _jsonable(value: Any) -> Any:
    """Encode the read-only containers a frozen request may hold."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
