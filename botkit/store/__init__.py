"""The conversation store: SQLAlchemy 2 models, one section per aggregate behind the
``Store`` façade, and Alembic migrations."""

from botkit.store._process_lock import one_process_per_sqlite_file
from botkit.store.engine import Database, Migrated, is_sqlite
from botkit.store.facade import Store
from botkit.store.jobs import JobRecord, JobStore, NewJob
from botkit.store.outbound import settle_outbound
from botkit.store.records import (
    Accepted,
    CallRow,
    Claim,
    ContextPlan,
    ContextRead,
    Fence,
    Finished,
    HistoryTurn,
    OutboundDraft,
    OutboundSettle,
    Resumable,
    StoredMessage,
    ToolCallRecord,
    UsageRow,
    dollars,
    nanos,
)
from botkit.store.state import NamespaceState, Ttl
from botkit.store.view import StoreView

__all__ = [
    "Accepted",
    "CallRow",
    "Claim",
    "ContextPlan",
    "ContextRead",
    "Database",
    "Fence",
    "Finished",
    "HistoryTurn",
    "JobRecord",
    "JobStore",
    "Migrated",
    "NamespaceState",
    "NewJob",
    "OutboundDraft",
    "OutboundSettle",
    "Resumable",
    "Store",
    "StoreView",
    "StoredMessage",
    "ToolCallRecord",
    "Ttl",
    "UsageRow",
    "dollars",
    "is_sqlite",
    "nanos",
    "one_process_per_sqlite_file",
    "settle_outbound",
]
