"""A prompt's messages with their JSON made ahead of the request (``EncodedMessages``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import orjson

# what botkit.llm.types calls ChatMessage (that module imports this one)
ChatMessage = dict[str, Any]

__all__ = ["EncodedMessages", "encode"]


class EncodedMessages(tuple[ChatMessage, ...]):
    """Chat messages, a tuple, that come with their wire form already made: ``json``,
    their JSON array.

    A long conversation's turns do not change once settled, so the history cache
    (``botkit.history_cache``) encodes each turn once, when it keeps it, and keeps the
    conversation's encoded turns in one buffer; a request's body then copies that buffer
    instead of encoding two hundred turns again on every answer.

    A tuple like every ``ChatRequest``'s messages (a request keeps it as it is, with its
    JSON), so code that reads a request's messages sees no difference; being immutable,
    the JSON always says what the messages say. The dicts themselves must not be changed
    in place (they are the cache's).
    """

    json: bytes

    def __new__(cls, messages: Iterable[ChatMessage], json: bytes) -> Self:
        """``messages`` in order, and ``json``: exactly their JSON array."""
        made = super().__new__(cls, messages)
        made.json = json
        return made

    def __eq__(self, other: object) -> bool:
        # equal to a list of the same messages too, as the prompt it stands for was
        return tuple.__eq__(self, tuple(other) if isinstance(other, list) else other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__


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
