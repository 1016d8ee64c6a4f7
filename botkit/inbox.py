"""The inbox: where adapters hand inbound messages, durably and exactly once."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botkit._faults import fault_point
from botkit.exceptions import StoreError
from botkit.leases import Singleton, Singletons
from botkit.messages import ConversationRef, Message
from botkit.metrics import ChannelReport, label
from botkit.store.records import Accepted

if TYPE_CHECKING:
    from botkit.history_cache import ReadAhead
    from botkit.metrics import Metrics
    from botkit.store import Claim, Store, StoredMessage

log = logging.getLogger(__name__)

__all__ = ["Accepted", "Inbox", "KeyValueState"]


class KeyValueState(Protocol):
    """Persisted JSON values under one namespace (a plugin's or an adapter's own)."""

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        ...

    async def set(self, key: str, value: Any, *, ttl: float | timedelta | None = None) -> None:
        """Store a JSON-serialisable value under ``key``; with ``ttl`` (seconds or a
        ``timedelta``) it is gone that long after, by the database's clock, and pruned
        later (per-delivery bookkeeping that must not pile up)."""
        ...

    async def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: float | timedelta | None = None,
    ) -> Any:
        """Replace the value under ``key`` by ``change(value)`` atomically, even with
        other processes updating it at once; ``default`` when it is not set. ``change``
        is a quick plain function (it runs in the database's transaction, maybe more
        than once). With ``ttl``, the key expires that long after; without, a set key
        keeps its expiry. Returns the new value."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key``; no error when it was not there."""
        ...


class Inbox:
    """Accepts inbound messages into the store and hands them to the dispatcher.

    Adapters get the bot's inbox in ``start()``; they never build one.
    """

    _singletons: Singletons | None = None  # an inbox built by hand runs singletons unleased
    _metrics: Metrics | None = None  # and a test's subclass that skips __init__ counts nothing
    _read_ahead: ReadAhead | None = None  # nor reads ahead

    def __init__(
        self,
        store: Store,
        submit: Callable[[int, int, Message], None],
        waiter: Callable[[int], Awaitable[None]],
        metrics: Metrics,
        claim: Callable[[], Claim] | None = None,
        singletons: Singletons | None = None,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        self._store = store
        self._read_ahead = read_ahead
        self._singletons = singletons
        self._claim = claim
        self._submit = submit
        self._waiter = waiter
        self._metrics = metrics
        self._closed = False

    def close(self) -> None:
        """Refuse new messages from now on (shutdown): adapters must not acknowledge them."""
        self._closed = True

    async def accept(self, message: Message, *, skip: str | None = None) -> Accepted:
        """Store ``message`` in one transaction, unique on (channel, external id).

        Returns only after the commit, so an adapter that acknowledges to its channel
        after this returned can never lose an acknowledged message. A duplicate returns
        ``duplicate=True`` and is not processed again.

        Args:
            message: what arrived.
            skip: the reason this message must not be answered (an auto-reply, a bounce,
                a mailing list): it is stored as ``skipped`` with the reason, visible in
                the store, and never reaches a handler or the model. Start it with a
                stable code and a colon (``bounce: empty Return-Path``): the code is the
                ``reason`` of ``botkit_messages_ignored_total``.

        Raises:
            StoreError: the database failed, or the bot is shutting down; do not
                acknowledge, let the channel deliver it again.
        """
        if self._closed:
            raise StoreError("the bot is shutting down and accepts no new messages")
        if not message.external_id:
            raise ValueError("a message needs an external_id to be deduplicated")
        claim = self._claim() if self._claim is not None else None
        inbound = self._store.inbound
        ahead = self._read_ahead
        plan = None
        if ahead is not None and skip is None:  # its answer's new turns, read with it
            plan = ahead.cache.plan(
                inbound.known_conversation(message.conversation),
                limit=ahead.limit,
                changes=inbound.context_changes,
            )
        accepted, conversation_id, read = await inbound.accept_reading(
            message, claim=claim, skip=skip, plan=plan
        )
        if read is not None and plan is not None and ahead is not None:
            ahead.cache.prefetched(conversation_id, accepted.message_id + 1, plan, read)
        fault_point("accept")
        metrics = self._metrics
        assert metrics is not None  # set by __init__
        metrics.received.labels(message.channel).inc()
        if accepted.duplicate:
            metrics.duplicates.labels(message.channel).inc()
            log.info("duplicate %s message %s ignored", message.channel, message.external_id)
        elif skip is not None:
            metrics.messages_in.labels(message.channel).inc()
            metrics.ignored.labels(message.channel, label(skip)).inc()
            log.info(
                "%s message %s stored, not answered: %s",
                message.channel,
                message.external_id,
                skip,
            )
        else:
            metrics.messages_in.labels(message.channel).inc()
            # handed over in memory: the dispatcher need not read it back
            self._submit(
                accepted.message_id,
                conversation_id,
                dataclasses.replace(message, id=accepted.message_id),
            )
        return accepted

    def report(self, channel: str) -> ChannelReport:
        """Where the adapter of ``channel`` counts what only it sees: events it ignored,
        waits for its channel's rate limits (see :class:`~botkit.metrics.ChannelReport`)."""
        return ChannelReport(self._metrics, channel)

    def state(self, namespace: str) -> KeyValueState:
        """A persisted key-value store for an adapter's own bookkeeping (offsets, UIDs)."""
        return self._store.state(f"adapter:{namespace}")

    async def transcript(
        self, conversation: ConversationRef, *, limit: int
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of a conversation, oldest first, for a channel
        that keeps no history of its own (the web chat shows it when its page loads):
        every message people wrote, and the bot's replies but those that failed. A reply
        being written shows the text last stored; what a channel was shown since then
        only this process knows.

        Raises:
            StoreError: the database failed.
        """
        return await self._store.history.transcript(conversation, limit=limit)

    def singleton(self, name: str, work: Callable[[], Coroutine[Any, Any, object]]) -> Singleton:
        """Work that must run in one process cluster-wide (a poller, a mailbox watcher).

        Run the result as a task the adapter owns (``asyncio.create_task(s.run())``) and
        cancel it in ``stop()``. It calls ``work()`` only while this process holds the
        lease ``name`` (the same name in every process: say ``"telegram:<bot id>"``),
        cancels it before the lease could pass to another process, calls it again once
        the lease is back, and releases the lease at once when cancelled.

        Args:
            name: the lease's name, 1-200 characters.
            work: starts the work; cancelled to stop it.

        Raises:
            ValueError: the name is empty or longer than 200 characters.
        """
        if self._singletons is None:
            return Singleton(name, work, leases=None, holder="", lease=1.0)
        return self._singletons.singleton(name, work)

    async def wait_done(self, message_id: int) -> None:
        """Wait until the dispatcher has finished a message (answered, skipped or failed)."""
        await self._waiter(message_id)
