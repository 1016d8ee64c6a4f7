"""The ``Store``: one object the core is handed, its sections one per aggregate.

``store.inbound`` (accepting and finishing messages), ``store.outbound`` (the outbox's
rows), ``store.claims`` (who holds which message), ``store.history`` (conversations and
their turns), ``store.usage`` (model calls and spend), ``store.tool_calls``,
``store.state(namespace)``, ``store.leases`` and ``store.jobs``. Plugins get
``store.view`` (:class:`~botkit.store.view.StoreView`), never the store.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite

from botkit.store._batch import Intake
from botkit.store._conversations import Conversations
from botkit.store._statements import write_reply
from botkit.store.claims import ClaimStore
from botkit.store.engine import Database
from botkit.store.history import HistoryStore
from botkit.store.inbound import InboundStore
from botkit.store.jobs import JobStore
from botkit.store.leases import LeaseStore
from botkit.store.outbound import OutboundStore
from botkit.store.state import NamespaceState, StateStore
from botkit.store.tool_calls import ToolCallStore
from botkit.store.usage import UsageStore
from botkit.store.view import StoreView

__all__ = ["Store"]


class Store:
    """The conversation store, by aggregate; each section's methods run in their own
    transaction and raise ``StoreError`` when the database fails.

    Attributes:
        db: the database every section runs on.
    """

    def __init__(self, database: Database) -> None:
        self.db = database
        dialect = sqlite if database.sqlite else postgresql
        conversations = Conversations(dialect)
        self.usage = UsageStore(database)
        self.inbound = InboundStore(database, Intake(dialect, conversations), self.usage)
        self.outbound = OutboundStore(database)
        self.claims = ClaimStore(database)
        self.history = HistoryStore(database, conversations)
        self.tool_calls = ToolCallStore(database)
        self.leases = LeaseStore(database)  # singleton leases and job runs
        self.jobs = JobStore(database, write_reply)  # plugins' scheduled jobs
        self.view = StoreView(self.history, self.usage)
        self._state = StateStore(database)

    def state(self, namespace: str) -> NamespaceState:
        """The persisted key-value state of one plugin or adapter."""
        return NamespaceState(self._state, namespace)

    async def prune_state(self) -> int:
        """Delete the state keys of every namespace whose time to live ran out."""
        return await self._state.prune()
