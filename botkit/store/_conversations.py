"""Conversation ids by key: found or created in the caller's transaction, and cached
once that transaction committed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from botkit.exceptions import StoreError
from botkit.messages import ConversationRef
from botkit.store._statements import FIND_CONVERSATION, chunks, conversation_row, conversations
from botkit.store.models import utcnow

_CACHE = 100_000


class Conversations:
    """The ids of conversations, shared by the sections that store messages.

    Rows are never deleted or re-keyed, so a cached id never goes stale.
    """

    def __init__(self, dialect: Any) -> None:
        self._ids: dict[str, int] = {}
        #: grows whenever this process changes where a conversation's history starts,
        #: its summary, or puts a held message back into it: turns read ahead of time
        #: (``HistoryCache.prefetched``) are not trusted across such a change
        self.context_changes = 0
        statement = dialect.insert(conversations).on_conflict_do_nothing(index_elements=["key"])
        self._insert_one = statement.returning(conversations.c.id)
        self._insert_many = self._insert_one.returning(conversations.c.key)

    def find(self, conn: Connection, ref: ConversationRef) -> int:
        """The id of the conversation at ``ref``, created when new."""
        known = self._ids.get(ref.key)
        if known is not None:
            return known
        found = conn.execute(FIND_CONVERSATION, {"b_key": ref.key}).scalar()
        if found is not None:
            return int(found)
        inserted = conn.execute(self._insert_one, conversation_row(ref, utcnow())).scalar()
        if inserted is not None:
            return int(inserted)
        found = conn.execute(FIND_CONVERSATION, {"b_key": ref.key}).scalar()
        if found is None:  # pragma: no cover
            raise StoreError("conversation vanished while it was being created")
        return int(found)

    def find_many(self, conn: Connection, refs: list[ConversationRef]) -> dict[str, int]:
        """The ids of these conversations by key, creating the new ones (multi-row)."""
        found: dict[str, int] = {}
        for ref in refs:
            known = self._ids.get(ref.key)  # the loop's thread may clear it meanwhile
            if known is not None:
                found[ref.key] = known
        missing = {r.key: r for r in refs if r.key not in found}
        for chunk in chunks(list(missing)):
            query = select(conversations.c.id, conversations.c.key).where(
                conversations.c.key.in_(chunk)
            )
            found.update((key, int(id_)) for id_, key in conn.execute(query).all())
        new = [ref for key, ref in missing.items() if key not in found]
        if new:
            now = utcnow()
            rows = [conversation_row(ref, now) for ref in new]
            found.update(
                (key, int(id_)) for id_, key in conn.execute(self._insert_many, rows).all()
            )
            for ref in new:  # made meanwhile by another process: read it
                if ref.key not in found:
                    found[ref.key] = self.find(conn, ref)
        return found

    def known(self, ref: ConversationRef) -> int | None:
        """The id of the conversation at ``ref``, if this process has it cached."""
        return self._ids.get(ref.key)

    def context_changed(self) -> None:
        """A conversation's start, summary or held messages are being changed."""
        self.context_changes += 1

    def remember(self, ref: ConversationRef, conversation_id: int) -> None:
        """Cache a conversation's id, once the transaction that found or made it has
        committed (a rolled-back row's id may be given to another conversation)."""
        if len(self._ids) >= _CACHE:
            self._ids.clear()  # crude bound; refilled on demand
        self._ids[ref.key] = conversation_id
