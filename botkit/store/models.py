"""The schema as SQLAlchemy Core tables: conversations, messages, model calls, plugin
state, summaries, leases, jobs.

Core tables, not ORM classes: every query is Core, and not loading ``sqlalchemy.orm``
keeps about 6 MiB out of every bot process.

Money is stored as whole nano-dollars (``BigInteger``): exact on every database, summable
in SQL, and fine enough for a single token of the cheapest model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "Base",
    "conversation_summaries",
    "conversations",
    "job_runs",
    "leases",
    "messages",
    "model_calls",
    "scheduled_jobs",
    "spend_reservations",
    "state",
    "tool_calls",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base:
    """Where the schema is: ``Base.metadata`` holds every table, with a naming convention
    so that migrations name constraints alike."""

    metadata: ClassVar[MetaData] = MetaData(naming_convention=NAMING)


def _id() -> Column[int]:
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


def _when(name: str, *, nullable: bool = False, default: bool = False) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=nullable, default=utcnow if default else None)


# One conversation: a chat, a thread, a topic or an email thread on one channel.
conversations = Table(
    "conversations",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(600), nullable=False, unique=True),
    Column("channel", String(64), nullable=False),
    Column("chat_id", String(255), nullable=False),
    Column("thread_id", String(255)),
    # Messages with an id at or below this are not history any more (``/reset``).
    Column("history_start_id", BigInteger, nullable=False, default=0),
    _when("created_at", default=True),
    _when("updated_at", default=True),
)

# An inbound or outbound message, with its processing or delivery status.
#
# Inbound: ``pending`` → ``processing`` → ``done`` | ``skipped`` | ``failed``, or
# ``context`` for chatter kept as history but not addressed to the bot.
# Outbound (the outbox): ``pending`` → ``sending`` → ``delivered`` | ``failed``; a
# streamed reply is ``streaming`` until its last edit.
messages = Table(
    "messages",
    Base.metadata,
    _id(),
    Column("conversation_id", ForeignKey("conversations.id"), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("direction", String(3), nullable=False),  # "in" | "out"
    Column("external_id", String(255)),
    Column("sender_id", String(255)),
    Column("sender_name", String(255)),
    Column("text", Text, nullable=False, default=""),
    Column("markup", String(16), nullable=False, default="plain"),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("reply_to_id", ForeignKey("messages.id")),
    Column("attachments", JSON),
    Column("meta", JSON),
    Column("raw", JSON),
    Column("attempts", Integer, nullable=False, default=0),
    _when("next_attempt_at", nullable=True),
    # Which bot process owns this message's processing or delivery, and until when: a
    # process renews its claims while alive; another takes over only after they lapse.
    Column("claimed_by", String(64)),
    _when("claimed_until", nullable=True),
    # The fencing token: grows by one on every claim that takes the row from another
    # holder (or from none); a state change by a holder whose token is older changes
    # nothing, so a process that stalled past its lease cannot act on stale work.
    Column("claim_token", BigInteger, nullable=False, default=0, server_default="0"),
    _when("created_at", default=True),
    _when("updated_at", default=True),
    UniqueConstraint("channel", "direction", "external_id", name="uq_messages_external"),
    Index("ix_messages_conversation", "conversation_id", "id"),
    # unfinished work by status; with the conversation, "has this conversation a reply
    # waiting" (asked as every answer is stored) is a seek however long it is
    Index("ix_messages_status", "direction", "status", "conversation_id"),
)

# One request to the model (each retry is its own row), with its usage and cost.
model_calls = Table(
    "model_calls",
    Base.metadata,
    _id(),
    Column("message_id", ForeignKey("messages.id")),
    Column("conversation_id", ForeignKey("conversations.id")),
    Column("channel", String(64)),
    Column("user_id", String(255)),
    Column("purpose", String(32), nullable=False),
    Column("model", String(128), nullable=False),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("cost_nanos", BigInteger),  # None: price unknown
    Column("latency_ms", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error", Text),
    Column("attempt", Integer, nullable=False, default=1),
    # the server sent no usage: the tokens (and the cost) are botkit's own count
    Column("usage_estimated", Boolean, nullable=False, default=False, server_default=false()),
    _when("created_at", default=True),
    Index("ix_model_calls_created", "created_at"),
)

# One tool call the model made while answering an inbound message, and its result.
#
# Stored when the call starts (``status`` "running") and again when it ends ("done";
# "failed" when the tool raised, "skipped" when it declined), before the model is asked
# again: a retried or resumed answer replays these rounds instead of running the tools
# again. One still "running" when the answer is tried again was cut short by a stop or
# crash, and may or may not have taken effect.
tool_calls = Table(
    "tool_calls",
    Base.metadata,
    _id(),
    Column("message_id", ForeignKey("messages.id"), nullable=False),
    Column("round", Integer, nullable=False),  # the answer's round of calls, from 0
    Column("call_id", String(255), nullable=False),  # the model's id of the call
    Column("name", String(128), nullable=False),
    Column("arguments", Text, nullable=False),  # as the model wrote them (JSON text)
    Column("said", Text),  # text the model said with the round
    Column("status", String(16), nullable=False),  # running, done, failed, skipped
    Column("result", Text),  # what the model was told
    _when("created_at", default=True),
    _when("finished_at", nullable=True),
    Index("ix_tool_calls_message", "message_id", "id"),
)

# A persisted JSON value in a plugin's or adapter's own namespace.
state = Table(
    "state",
    Base.metadata,
    Column("namespace", String(128), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", JSON, nullable=False),
    _when("updated_at", default=True),
    # gone after this (by the database's clock), pruned later; never, when null
    _when("expires_at", nullable=True),
    Index("ix_state_expires", "expires_at"),
)

# The running summary of a conversation's turns that no longer fit the window.
conversation_summaries = Table(
    "conversation_summaries",
    Base.metadata,
    Column("conversation_id", ForeignKey("conversations.id"), primary_key=True),
    Column("text", Text, nullable=False),
    # The newest message id the summary covers; older turns need not be sent again.
    Column("covers_through_id", BigInteger, nullable=False),
    _when("updated_at", default=True),
)

# A named singleton (the Telegram poller, one IMAP mailbox, the scheduler), held by one
# process cluster-wide until ``until`` (the database's clock); ``token`` grows on every
# change of holder.
leases = Table(
    "leases",
    Base.metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(64)),
    Column("token", BigInteger, nullable=False, default=0, server_default="0"),
    _when("until", nullable=True),
    _when("updated_at", default=True),
)

# One due time of a scheduled job, recorded by the process that fired it: the primary
# key makes each due time fire once cluster-wide.
job_runs = Table(
    "job_runs",
    Base.metadata,
    Column("job", String(200), primary_key=True),
    Column("due_at", UTCDateTime(), primary_key=True),
    Column("holder", String(64)),
    _when("fired_at", default=True),
)

# A model call's cost held against the budgets while it is made: its worst case (counted
# prompt plus the output limit, priced) before, its real usage once known, until the
# call itself is stored. Budgets read calls and reservations alike, so calls made at
# once cannot together pass a limit. One left by a dead process expires.
spend_reservations = Table(
    "spend_reservations",
    Base.metadata,
    _id(),
    Column("model", String(128), nullable=False),
    Column("channel", String(64)),
    Column("user_id", String(255)),
    Column("tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger),  # None: price unknown
    _when("created_at", default=True),
    _when("expires_at"),
)

# A plugin's job scheduled for a time (``ctx.schedule``): fired once cluster-wide by the
# scheduler, then ``done`` (or due again, when it recurs).
#
# ``pending`` → ``running`` (claimed by one process, fenced by ``claim_token``, until
# ``claimed_until`` by the database's clock) → ``done`` | ``failed``; or ``cancelled``.
# A ``running`` job whose claim lapsed (its process died) is claimed again: a job runs
# at least once, and the replies it sends are stored with its completion, so they go
# out once.
scheduled_jobs = Table(
    "scheduled_jobs",
    Base.metadata,
    _id(),
    Column("plugin", String(128), nullable=False),
    Column("job", String(128), nullable=False),  # the name the plugin registered it by
    # scheduling again with the same (plugin, key) finds this job instead of adding one
    Column("key", String(255)),
    _when("due_at"),
    Column("data", JSON, nullable=True),
    Column("conversation_id", ForeignKey("conversations.id")),
    # recurring jobs: an interval, or a cron expression read in a time zone
    Column("every_seconds", Float),
    Column("cron", String(200)),
    Column("timezone", String(64)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),  # runs of this due time
    Column("runs", Integer, nullable=False, default=0),  # due times fired, in all
    Column("claimed_by", String(64)),
    _when("claimed_until", nullable=True),
    Column("claim_token", BigInteger, nullable=False, default=0, server_default="0"),
    Column("error", Text),
    _when("created_at", default=True),
    _when("updated_at", default=True),
    UniqueConstraint("plugin", "key", name="uq_scheduled_jobs_key"),
    Index("ix_scheduled_jobs_due", "status", "due_at"),
    Index("ix_scheduled_jobs_plugin", "plugin", "status"),
)
