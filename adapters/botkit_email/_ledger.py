"""The adapter's persisted bookkeeping, in the inbox's key-value state.

Keys (one namespace per adapter instance):

- ``position:<mailbox>`` → ``{"uidvalidity": n, "last_uid": n}``: how far intake got.
- ``mail:<external id>`` → the decision taken for one inbound mail and what ``send``
  needs to answer it (recipient, subject, references, thread), and ``answered_by``:
  the delivery id of its one answer.
- ``thread:<message-id>`` → the thread's root Message-ID.
- ``subject:<digest>`` → the root of the thread with that normalised subject and
  those participants (the fallback for mail without In-Reply-To/References).
- ``sender:<address>`` / ``thread-reply:<root>`` → when the last automatic reply to
  that sender / in that thread was granted (epoch seconds); expires once the
  auto-reply period is over (and ``GRANT_SLACK`` more), when it decides nothing.
- ``delivery:<delivery id>`` → ``{"status": "sending"|"sent"|"failed", "message_id"}``:
  what became of one outbox entry, so a resend reuses its Message-ID and a reply
  already sent is not sent again; expires after ``DELIVERY_TTL``, long after the
  outbox stopped retrying it.
- ``thread-last:<root>`` → the external id of the newest inbound mail of a thread
  (where a message that answers no particular mail is addressed).
- ``located:<mailbox>/<uidvalidity>/<uid>`` → the external id of the mail read there,
  so an attachment's IMAP URL still finds its mail after it moved (``after_accept =
  "move"``) or the folder was renumbered.
- ``salt`` → a random value mixed into our Message-IDs, so two installations sharing a
  domain never produce the same one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botkit import KeyValueState

__all__ = ["DELIVERY_TTL", "GRANT_SLACK", "Ledger", "Position", "state_key"]

_MAX_KEY = 200
DELIVERY_TTL = timedelta(days=30)
"""How long what became of one outbox entry is kept (per delivery: pruned, not piled up)."""
GRANT_SLACK = timedelta(hours=1)
"""How long an automatic-reply grant outlives its period (clocks differ a little)."""


def state_key(prefix: str, value: str) -> str:
    """``prefix:value``, hashed when too long for the state table's key column."""
    if len(value) + len(prefix) + 1 <= _MAX_KEY:
        return f"{prefix}:{value}"
    return f"{prefix}:sha256:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Position:
    """Where intake stands in one folder."""

    uidvalidity: int
    last_uid: int


class Ledger:
    """Typed access to the adapter's state."""

    def __init__(self, state: KeyValueState) -> None:
        self._state = state

    async def salt(self) -> str:
        """This installation's Message-ID salt, created on first use."""
        value = await self._state.get("salt")
        if not isinstance(value, str) or not value:
            value = secrets.token_hex(16)
            await self._state.set("salt", value)
        return value

    async def position(self, mailbox: str) -> Position | None:
        """How far intake got in ``mailbox``, or ``None`` before the first sync."""
        value = await self._state.get(state_key("position", mailbox))
        if not isinstance(value, dict):
            return None
        return Position(int(value["uidvalidity"]), int(value["last_uid"]))

    async def set_position(self, mailbox: str, position: Position) -> None:
        """Record that every UID up to ``last_uid`` was handled."""
        await self._state.set(
            state_key("position", mailbox),
            {"uidvalidity": position.uidvalidity, "last_uid": position.last_uid},
        )

    async def mail(self, external_id: str) -> dict[str, Any] | None:
        """The record of one inbound mail."""
        value = await self._state.get(state_key("mail", external_id))
        return value if isinstance(value, dict) else None

    async def save_mail(self, external_id: str, record: dict[str, Any]) -> None:
        """Store (or update) the record of one inbound mail."""
        await self._state.set(state_key("mail", external_id), record)

    async def thread_of(self, message_id: str) -> str | None:
        """The root of the thread a Message-ID belongs to, if known."""
        value = await self._state.get(state_key("thread", message_id))
        return value if isinstance(value, str) else None

    async def remember_thread(self, message_id: str, root: str) -> None:
        """Record that ``message_id`` belongs to the thread rooted at ``root``."""
        await self._state.set(state_key("thread", message_id), root)

    async def subject_thread(self, digest: str) -> str | None:
        """The root of the thread with this subject-and-participants digest."""
        value = await self._state.get(state_key("subject", digest))
        return value if isinstance(value, str) else None

    async def remember_subject(self, digest: str, root: str) -> None:
        """Record the thread for a subject-and-participants digest."""
        await self._state.set(state_key("subject", digest), root)

    async def granted_at(self, kind: str, key: str) -> tuple[float, str] | None:
        """When the last automatic reply for ``kind`` (``sender``/``thread-reply``) ``key``
        was granted, and to which mail."""
        value = await self._state.get(state_key(kind, key))
        if isinstance(value, dict) and isinstance(value.get("at"), int | float):
            return float(value["at"]), str(value.get("mail", ""))
        return None

    async def grant(self, kind: str, key: str, at: float, mail: str, *, period: float) -> None:
        """Record an automatic reply granted for ``key`` at ``at`` to ``mail``; kept
        for the auto-reply ``period`` (seconds) it limits, then pruned."""
        ttl = timedelta(seconds=period) + GRANT_SLACK
        await self._state.set(state_key(kind, key), {"at": at, "mail": mail}, ttl=ttl)

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """What became of one outbox entry, if it was tried before."""
        value = await self._state.get(state_key("delivery", delivery_id))
        return value if isinstance(value, dict) else None

    async def save_delivery(self, delivery_id: str, status: str, message_id: str) -> None:
        """Record the state of one outbox entry (kept for ``DELIVERY_TTL``)."""
        await self._state.set(
            state_key("delivery", delivery_id),
            {"status": status, "message_id": message_id},
            ttl=DELIVERY_TTL,
        )

    async def locate(self, mailbox: str, uidvalidity: int, uid: int, external_id: str) -> None:
        """Record which mail was read at this place."""
        await self._state.set(state_key("located", f"{mailbox}/{uidvalidity}/{uid}"), external_id)

    async def located(self, mailbox: str, uidvalidity: int, uid: int) -> str | None:
        """The external id of the mail read at this place, if any."""
        value = await self._state.get(state_key("located", f"{mailbox}/{uidvalidity}/{uid}"))
        return value if isinstance(value, str) else None

    async def thread_last(self, root: str) -> str | None:
        """The external id of the newest inbound mail of a thread."""
        value = await self._state.get(state_key("thread-last", root))
        return value if isinstance(value, str) else None

    async def set_thread_last(self, root: str, external_id: str) -> None:
        """Record the newest inbound mail of a thread."""
        await self._state.set(state_key("thread-last", root), external_id)
