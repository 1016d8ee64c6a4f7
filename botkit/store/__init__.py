"""The conversation store: SQLAlchemy 2 async models, queries and Alembic migrations."""

from botkit.store._process_lock import one_process_per_sqlite_file
from botkit.store.engine import Database, Migrated, is_sqlite
from botkit.store.jobs import JobRecord, JobStore, NewJob
from botkit.store.records import ContextRead, StoredMessage, ToolCallRecord, UsageRow
from botkit.store.repository import (
    CallRow,
    Claim,
    Fence,
    Finished,
    NamespaceState,
    OutboundDraft,
    OutboundSettle,
    Resumable,
    Store,
    dollars,
    nanos,
    settle_outbound,
)

__all__ = [
    "CallRow",
    "Claim",
    "ContextRead",
    "Database",
    "Fence",
    "Finished",
    "JobRecord",
    "JobStore",
    "Migrated",
    "NamespaceState",
    "NewJob",
    "OutboundDraft",
    "OutboundSettle",
    "Resumable",
    "Store",
    "StoredMessage",
    "ToolCallRecord",
    "UsageRow",
    "dollars",
    "is_sqlite",
    "nanos",
    "one_process_per_sqlite_file",
    "settle_outbound",
]
