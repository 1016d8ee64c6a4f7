"""The inbox: where adapters hand inbound messages, durably and exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from botkit.messages import Message

__all__ = ["Accepted", "Inbox", "KeyValueState"]


@dataclass(frozen=True, slots=True)
class Accepted:
    """What :meth:`Inbox.accept` did with a message.

    Attributes:
        message_id: the store's id of the message (of the first copy, for a duplicate).
        duplicate: true when the same (channel, external id) had been accepted before;
            the adapter acknowledges it all the same, and it is not processed again.
    """

    message_id: int
    duplicate: bool


class KeyValueState(Protocol):
    """Persisted JSON values under one namespace (a plugin's or an adapter's own)."""

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        ...

    async def set(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key``; no error when it was not there."""
        ...


class Inbox:
    """Accepts inbound messages into the store; the dispatcher picks them up from there."""

    async def accept(self, message: Message) -> Accepted:
        """Store ``message`` in one transaction, unique on (channel, external id).

        Returns only after the commit, so an adapter that acknowledges to its channel
        after this returned can never lose an acknowledged message.

        Raises:
            StoreError: the database failed; do not acknowledge, let the channel redeliver.
        """
        raise NotImplementedError

    def state(self, namespace: str) -> KeyValueState:
        """A persisted key-value store for an adapter's own bookkeeping (offsets, UIDs)."""
        raise NotImplementedError

    async def wait_done(self, message_id: int) -> None:
        """Wait until the dispatcher has finished with a message (answered, skipped or failed)."""
        raise NotImplementedError
