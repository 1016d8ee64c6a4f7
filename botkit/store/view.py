"""What plugins may read of the store: a conversation's turns, a chat's messages since a
time, stored messages by id, spend. Nothing here claims, finishes or sends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from botkit.messages import ConversationRef
from botkit.store.history import HistoryStore
from botkit.store.records import StoredMessage
from botkit.store.usage import UsageStore

__all__ = ["StoreView"]


class StoreView:
    """The store as a plugin sees it (``ctx.store``): read-only, but for finding a
    conversation's id, which records the conversation when it is new.

    The rest (inbox, outbox, claims) is the core's: a plugin answers, annotates and
    replies through its :class:`~botkit.Context`, and keeps its own data in ``ctx.state``.
    """

    __slots__ = ("_history", "_usage")

    def __init__(self, history: HistoryStore, usage: UsageStore) -> None:
        self._history = history
        self._usage = usage

    async def conversation_id(self, conversation: ConversationRef) -> int:
        """The store's id of a conversation (recorded now, if it was not yet)."""
        return await self._history.conversation_id(conversation)

    async def history(
        self, conversation_id: int, *, before_id: int | None = None, limit: int, after_id: int = 0
    ) -> list[StoredMessage]:
        """The newest ``limit`` turns of a conversation since its last ``/reset`` (and
        after ``after_id``, before ``before_id``), oldest first: handled messages and
        the replies produced."""
        return await self._history.turns(
            conversation_id, before_id=before_id, limit=limit, after_id=after_id
        )

    async def chat_messages_since(
        self, channel: str, chat_id: str, *, since: datetime, limit: int
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of every conversation of one chat since
        ``since``, oldest first (every thread of a mailbox, every topic of a group); failed
        replies left out."""
        return await self._history.chat_messages_since(channel, chat_id, since=since, limit=limit)

    async def messages(self, ids: Sequence[int]) -> list[StoredMessage]:
        """The stored messages with these ids, in id order."""
        return await self._history.messages(ids)

    async def spend(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        channel: str | None = None,
        before_reservation: int | None = None,
    ) -> tuple[int, int]:
        """Tokens and nano-dollars spent since ``since`` (by one user and/or on one
        channel), calls in flight included (those reserved before ``before_reservation``,
        when given)."""
        return await self._usage.spend(
            since=since, user_id=user_id, channel=channel, before_reservation=before_reservation
        )
