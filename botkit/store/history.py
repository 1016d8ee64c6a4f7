"""Conversations and their messages as stored: turns, running summaries, transcripts,
digests, messages by id, and the facts plugins annotate them with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from botkit.exceptions import StoreError
from botkit.messages import ConversationRef
from botkit.store._batch import ReadContext
from botkit.store._conversations import Conversations
from botkit.store._section import Section
from botkit.store._statements import (
    SNAPSHOT_QUERY,
    conversations,
    history_rows,
    jsonable,
    messages,
    snapshots,
    summaries,
)
from botkit.store.engine import Database
from botkit.store.models import utcnow
from botkit.store.records import ContextRead, StoredMessage

__all__ = ["HistoryStore"]


class HistoryStore(Section):
    """Conversations and their turns (``store.history``)."""

    def __init__(self, database: Database, conversations: Conversations) -> None:
        super().__init__(database)
        self._conversations = conversations

    async def conversation_id(self, ref: ConversationRef) -> int:
        """The id of the conversation at ``ref``, created when new."""
        found = await self._write(
            "find conversation", lambda conn: self._conversations.find(conn, ref)
        )
        self._conversations.remember(ref, found)
        return found

    async def messages(self, ids: Sequence[int]) -> list[StoredMessage]:
        """The messages (inbound or outbound) with these ids, in id order."""
        query = SNAPSHOT_QUERY.where(messages.c.id.in_(list(ids))).order_by(messages.c.id)
        return await self._read("load messages", snapshots(query))

    async def annotate(self, message_id: int, values: dict[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into a message's metadata (a plugin's verdict, a label).

        Returns:
            The metadata after the merge.
        """
        return await self._merge_meta(message_id, values, "annotate message")

    async def rewrite_text(
        self, message_id: int, text: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a message's text (a voice note's transcript) and merge ``values`` into
        its metadata, in one write.

        Returns:
            The metadata after the merge.
        """
        return await self._merge_meta(message_id, values, "rewrite message", text=text)

    async def _merge_meta(
        self, message_id: int, values: dict[str, Any], what: str, *, text: str | None = None
    ) -> dict[str, Any]:
        added = jsonable(values)
        changed: dict[str, Any] = {} if text is None else {"text": text}

        def op(conn: Connection) -> dict[str, Any]:
            found = conn.execute(
                select(messages.c.meta).where(messages.c.id == message_id)
            ).one_or_none()
            if found is None:
                raise StoreError(f"no message {message_id}")
            meta: dict[str, Any] = {**(found[0] or {}), **added}
            conn.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(meta=meta, updated_at=utcnow(), **changed)
            )
            return meta

        return await self._write(what, op)

    async def turns(
        self, conversation_id: int, *, before_id: int | None, limit: int, after_id: int = 0
    ) -> list[StoredMessage]:
        """The newest ``limit`` turns of a conversation, oldest first.

        Only inbound messages that were handled and replies that were produced count;
        turns before the last ``/reset`` and at or before ``after_id`` are left out. Reads
        at most ``limit`` rows through the (conversation, id) index, however long the
        conversation is.
        """

        def op(conn: Connection) -> list[StoredMessage]:
            start = conn.execute(
                select(conversations.c.history_start_id).where(
                    conversations.c.id == conversation_id
                )
            ).scalar()
            return history_rows(conn, conversation_id, max(start or 0, after_id), before_id, limit)

        return await self._read("load history", op)

    async def recent_turns(
        self, conversation_id: int, *, before_id: int | None, limit: int, after_id: int = 0
    ) -> ContextRead:
        """Where history starts, the running summary, and the newest ``limit`` turns
        after both (and after ``after_id``), in one read: with ``after_id`` only the
        turns since then are read, however long the conversation is. The turns are
        :class:`HistoryTurn` tuples, what a prompt needs (:meth:`turns` gives whole
        snapshots)."""
        return await self._read(
            "load conversation", ReadContext(conversation_id, before_id, limit, after_id)
        )

    async def chat_messages_since(
        self, channel: str, chat_id: str, *, since: datetime, limit: int
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of every conversation in one chat since
        ``since``, oldest first: all threads of a mailbox, all topics of a group (for a
        digest). Failed replies are left out."""
        query = (
            SNAPSHOT_QUERY.where(
                conversations.c.channel == channel,
                conversations.c.chat_id == chat_id,
                messages.c.created_at >= since,
                messages.c.status != "failed",
            )
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        rows = await self._read("load chat messages", snapshots(query))
        return rows[::-1]

    async def transcript(self, ref: ConversationRef, *, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages of one conversation as its channel shows them,
        oldest first: every inbound message, whatever became of it, and every reply but
        those that failed (a channel that keeps no history of its own, the web chat,
        shows this). Reads through the conversation's unique key and the
        (conversation, id) index."""
        query = (
            SNAPSHOT_QUERY.where(
                conversations.c.key == ref.key,
                or_(messages.c.direction == "in", messages.c.status != "failed"),
            )
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        rows = await self._read("load transcript", snapshots(query))
        return rows[::-1]

    async def annotation_counts(
        self, key: str, *, since: datetime | None = None
    ) -> list[tuple[str, str, str, int]]:
        """How often each value of one annotation (``sentiment``, ``spam``...) was
        stored with inbound messages: ``(day, channel, value, count)``, newest day first."""
        value = messages.c.meta[key].as_string()
        day = self._utc_day(messages.c.created_at)
        query = (
            select(day.label("day"), messages.c.channel, value.label("value"), func.count())
            .where(messages.c.direction == "in", value.is_not(None))
            .group_by("day", messages.c.channel, "value")
            .order_by(day.desc(), messages.c.channel, "value")
        )
        if since is not None:
            query = query.where(messages.c.created_at >= since)

        def op(conn: Connection) -> list[tuple[str, str, str, int]]:
            return [(str(d), c, str(v), int(n)) for d, c, v, n in conn.execute(query).all()]

        return await self._read("count annotations", op)

    async def reset(self, conversation_id: int, *, through_id: int) -> None:
        """Start the conversation afresh: history begins after message ``through_id``."""
        self._conversations.context_changed()

        def op(conn: Connection) -> None:
            conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(history_start_id=through_id, updated_at=utcnow())
            )
            conn.execute(delete(summaries).where(summaries.c.conversation_id == conversation_id))

        await self._write("reset conversation", op)

    async def save_summary(self, conversation_id: int, text: str, covers_through_id: int) -> None:
        """Replace the running summary of a conversation."""
        self._conversations.context_changed()
        values = {"text": text, "covers_through_id": covers_through_id, "updated_at": utcnow()}
        query = (
            self._dialect.insert(summaries)
            .values(conversation_id=conversation_id, **values)
            .on_conflict_do_update(index_elements=["conversation_id"], set_=values)
        )
        await self._write("save summary", lambda conn: conn.execute(query))
