"""``MemoryState``: a :class:`~botkit.inbox.KeyValueState` in a dict, for testing an
adapter's or a plugin's bookkeeping without a database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from botkit.inbox import KeyValueState

__all__ = ["MemoryState"]


class MemoryState(KeyValueState):
    """Values kept in a dict, each stored as the database would store it (through JSON,
    so a value the store would refuse is refused here too), with the time to live each
    was last given (``ttls``), so a test can check what expires. Nothing expires by
    itself: time does not pass here.

    Attributes:
        values: what is stored now, by key.
        ttls: the ``ttl`` each key was set with (``None``: kept for good).
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.ttls: dict[str, float | timedelta | None] = {}

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return self.values.get(key, default)

    async def set(self, key: str, value: Any, *, ttl: float | timedelta | None = None) -> None:
        """Store ``value`` (a JSON value) under ``key``, for ``ttl`` or for good."""
        self.values[key] = json.loads(json.dumps(value))
        self.ttls[key] = ttl

    async def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: float | timedelta | None = None,
    ) -> Any:
        """``change`` applied to the value under ``key`` (``default`` when unset);
        without ``ttl`` a set key keeps its own, as the store does."""
        value = json.loads(json.dumps(change(self.values.get(key, default))))
        self.values[key] = value
        if ttl is not None or key not in self.ttls:
            self.ttls[key] = ttl
        return value

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        self.values.pop(key, None)
        self.ttls.pop(key, None)
