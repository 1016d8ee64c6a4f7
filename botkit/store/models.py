"""SQLAlchemy 2 ORM models: conversations, messages, model calls, plugin state, summaries.

Money is stored as whole nano-dollars (``BigInteger``): exact on every database, summable
in SQL, and fine enough for a single token of the cheapest model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ConversationRow",
    "ConversationSummaryRow",
    "JobRunRow",
    "LeaseRow",
    "MessageRow",
    "ModelCallRow",
    "ScheduledJobRow",
    "SpendReservationRow",
    "StateRow",
    "ToolCallRow",
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


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints alike."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ConversationRow(Base):
    """One conversation: a chat, a thread, a topic or an email thread on one channel."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(600), unique=True)
    channel: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str | None] = mapped_column(String(255))
    # Messages with an id at or below this are not history any more (``/reset``).
    history_start_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageRow(Base):
    """An inbound or outbound message, with its processing or delivery status.

    Inbound: ``pending`` → ``processing`` → ``done`` | ``skipped`` | ``failed``, or
    ``context`` for chatter kept as history but not addressed to the bot.
    Outbound (the outbox): ``pending`` → ``sending`` → ``delivered`` | ``failed``; a
    streamed reply is ``streaming`` until its last edit.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "direction", "external_id", name="uq_messages_external"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_status", "direction", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    channel: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    external_id: Mapped[str | None] = mapped_column(String(255))
    sender_id: Mapped[str | None] = mapped_column(String(255))
    sender_name: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text, default="")
    markup: Mapped[str] = mapped_column(String(16), default="plain")
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    # Which bot process owns this message's processing or delivery, and until when: a
    # process renews its claims while alive; another takes over only after they lapse.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    # The fencing token: grows by one on every claim that takes the row from another
    # holder (or from none); a state change by a holder whose token is older changes
    # nothing, so a process that stalled past its lease cannot act on stale work.
    claim_token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelCallRow(Base):
    """One request to the model (each retry is its own row), with its usage and cost."""

    __tablename__ = "model_calls"
    __table_args__ = (Index("ix_model_calls_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    channel: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_nanos: Mapped[int | None] = mapped_column(BigInteger)  # None: price unknown
    latency_ms: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # the server sent no usage: the tokens (and the cost) are botkit's own count
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ToolCallRow(Base):
    """One tool call the model made while answering an inbound message, and its result.

    Stored when the call starts (``status`` "running") and again when it ends ("done";
    "failed" when the tool raised, "skipped" when it declined), before the model is
    asked again: a retried or resumed answer replays these rounds instead of running
    the tools again. One still "running" when the answer is tried again was cut short
    by a stop or crash, and may or may not have taken effect.
    """

    __tablename__ = "tool_calls"
    __table_args__ = (Index("ix_tool_calls_message", "message_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    round: Mapped[int] = mapped_column(Integer)  # the answer's round of calls, from 0
    call_id: Mapped[str] = mapped_column(String(255))  # the model's id of the call
    name: Mapped[str] = mapped_column(String(128))
    arguments: Mapped[str] = mapped_column(Text)  # as the model wrote them (JSON text)
    said: Mapped[str | None] = mapped_column(Text)  # text the model said with the round
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed, skipped
    result: Mapped[str | None] = mapped_column(Text)  # what the model was told
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class StateRow(Base):
    """A persisted JSON value in a plugin's or adapter's own namespace."""

    __tablename__ = "state"
    __table_args__ = (Index("ix_state_expires", "expires_at"),)

    namespace: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # gone after this (by the database's clock), pruned later; never, when null
    expires_at: Mapped[datetime | None]


class ConversationSummaryRow(Base):
    """The running summary of a conversation's turns that no longer fit the window."""

    __tablename__ = "conversation_summaries"

    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    # The newest message id the summary covers; older turns need not be sent again.
    covers_through_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LeaseRow(Base):
    """A named singleton (the Telegram poller, one IMAP mailbox, the scheduler), held by
    one process cluster-wide until ``until`` (the database's clock); ``token`` grows on
    every change of holder."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobRunRow(Base):
    """One due time of a scheduled job, recorded by the process that fired it: the
    primary key makes each due time fire once cluster-wide."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)


class SpendReservationRow(Base):
    """A model call's cost held against the budgets while it is made: its worst case
    (counted prompt plus the output limit, priced) before, its real usage once known,
    until the call itself is stored. Budgets read calls and reservations alike, so calls
    made at once cannot together pass a limit. One left by a dead process expires."""

    __tablename__ = "spend_reservations"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(255))
    tokens: Mapped[int] = mapped_column(BigInteger)
    cost_nanos: Mapped[int | None] = mapped_column(BigInteger)  # None: price unknown
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ScheduledJobRow(Base):
    """A plugin's job scheduled for a time (``ctx.schedule``): fired once cluster-wide by
    the scheduler, then ``done`` (or due again, when it recurs).

    ``pending`` → ``running`` (claimed by one process, fenced by ``claim_token``, until
    ``claimed_until`` by the database's clock) → ``done`` | ``failed``; or
    ``cancelled``. A ``running`` job whose claim lapsed (its process died) is claimed
    again: a job runs at least once, and the replies it sends are stored with its
    completion, so they go out once.
    """

    __tablename__ = "scheduled_jobs"
    __table_args__ = (
        UniqueConstraint("plugin", "key", name="uq_scheduled_jobs_key"),
        Index("ix_scheduled_jobs_due", "status", "due_at"),
        Index("ix_scheduled_jobs_plugin", "plugin", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    plugin: Mapped[str] = mapped_column(String(128))
    job: Mapped[str] = mapped_column(String(128))  # the name the plugin registered it by
    # scheduling again with the same (plugin, key) finds this job instead of adding one
    key: Mapped[str | None] = mapped_column(String(255))
    due_at: Mapped[datetime]
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    # recurring jobs: an interval, or a cron expression read in a time zone
    every_seconds: Mapped[float | None] = mapped_column(Float)
    cron: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # runs of this due time
    runs: Mapped[int] = mapped_column(Integer, default=0)  # due times fired, in all
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    claim_token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
