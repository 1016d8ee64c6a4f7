"""The summary plugin: ``/summary [6h]`` and scheduled digests."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botkit import (
    ConfigError,
    Context,
    ConversationRef,
    CronSchedule,
    Message,
    Plugin,
    PluginRuntime,
    Reply,
    ServiceError,
)
from botkit_summary.mapreduce import summarize

__all__ = ["Digest", "SummarySettings", "parse_hours", "plugin"]

log = logging.getLogger(__name__)

DEFAULT_INSTRUCTION = (
    "Summarise the conversation for someone who missed it: the topics, what was decided, "
    "who does what, and the questions still open. Use short bullet points and the "
    "conversation's language."
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(m|min|minutes?|h|hours?|d|days?)?$", re.I)


@dataclass(frozen=True, slots=True)
class Digest:
    """A scheduled summary of one conversation (``[[plugins.summary.digests]]``).

    Attributes:
        name: names the digest in logs and its header.
        source: the conversation to summarise. On channels that can read their
            history (Slack) everything said there counts; elsewhere, what the bot saw.
            Without a ``thread_id`` it is the whole chat: every thread of a mailbox,
            every topic of a group.
        to: where the digest is sent.
        cron: when, as a cron expression (five fields or ``@daily``...) in ``timezone``.
        timezone: the cron's time zone (IANA name).
        hours: how far back each digest looks.
        skip_empty: send nothing when nothing was said.
    """

    name: str
    source: ConversationRef
    to: ConversationRef
    cron: str = "0 8 * * *"
    timezone: str = "UTC"
    hours: float = 24
    skip_empty: bool = True

    def problems(self, key: str) -> Iterator[ConfigError]:
        """A digest that could never run, found when the table is parsed."""
        try:
            CronSchedule.parse(self.cron)
        except ValueError as exc:
            yield ConfigError(f"{key}.cron", str(exc))
        try:
            _zone(self.timezone, f"{key}.timezone")
        except ConfigError as exc:
            yield exc
        if self.hours <= 0:
            yield ConfigError(f"{key}.hours", "must be positive")


@dataclass(frozen=True, slots=True)
class SummarySettings:
    """``[plugins.summary]``.

    Attributes:
        instruction: how summaries should read.
        max_messages: the most messages read for one summary.
        max_hours: the longest period ``/summary <N>h`` accepts.
        summary_tokens: the longest summary, in tokens.
        chunk_tokens: the most transcript tokens in one request; 0: as much as the
            model's window allows.
        parallel: how many chunks of a long transcript are summarised at once.
        digests: scheduled summaries.
    """

    instruction: str = DEFAULT_INSTRUCTION
    max_messages: int = 2000
    max_hours: float = 168
    summary_tokens: int = 600
    chunk_tokens: int = 0
    parallel: int = 4
    digests: tuple[Digest, ...] = ()

    def problems(self, key: str) -> Iterator[ConfigError]:
        """Sizes below 1 and digests named alike, found when the table is parsed."""
        for field_name in ("max_messages", "summary_tokens", "parallel"):
            if getattr(self, field_name) < 1:
                yield ConfigError(f"{key}.{field_name}", "must be at least 1")
        names: set[str] = set()
        for index, digest in enumerate(self.digests):
            if digest.name in names:
                yield ConfigError(
                    f"{key}.digests[{index}].name", f"another digest is named {digest.name!r}"
                )
            names.add(digest.name)


plugin = Plugin(
    "summary",
    description="Summaries of conversations and channels",
    settings_class=SummarySettings,
)


def parse_hours(text: str) -> float | None:
    """``"6h"``, ``"90m"``, ``"2d"``, ``"6"`` (hours) as hours; ``None`` if not a duration."""
    found = _DURATION.match(text.strip())
    if found is None:
        return None
    amount = float(found.group(1))
    unit = (found.group(2) or "h").lower()
    return amount / 60 if unit.startswith("m") else amount * 24 if unit.startswith("d") else amount


@plugin.on_command(
    "summary", description="Summarise this conversation, or the last hours: /summary 6h"
)
async def summary(message: Message, ctx: Context) -> Reply | str:
    """Summarise the conversation so far, or the channel's last N hours."""
    settings = ctx.settings_as(SummarySettings)
    args = ctx.args.strip()
    hours = parse_hours(args) if args else None
    if args and hours is None:
        return "Usage: /summary (this conversation) or /summary 6h (the last 6 hours)"
    if hours is not None and not 0 < hours <= settings.max_hours:
        return f"I can summarise at most the last {settings.max_hours:g} hours."
    if hours is None:
        rows = await ctx.history(limit=settings.max_messages)
        lines = [
            _line(r.sender_name or r.sender_id, r.direction, r.text)
            for r in rows
            if r.id != message.id
        ]
        what = "this conversation"
    else:
        since = datetime.now(UTC) - timedelta(hours=hours)
        where = ConversationRef(message.channel, message.conversation.chat_id)
        try:
            lines = await _lines_since(ctx, where, since, settings.max_messages)
        except ServiceError as exc:
            return f"I can't read this channel's history: {exc.reason}"
        what = f"the last {hours:g} hours"
    lines = [line for line in lines if line]
    if not lines:
        return f"There is nothing to summarise in {what} yet."
    await ctx.typing()
    text = await _summarize(ctx, settings, lines)
    return Reply(f"Summary of {what}:\n\n{text}")


async def _summarize(runtime: PluginRuntime, settings: SummarySettings, lines: list[str]) -> str:
    return await summarize(
        runtime.llm,
        lines,
        instruction=settings.instruction,
        summary_tokens=settings.summary_tokens,
        chunk_tokens=settings.chunk_tokens or None,
        parallel=settings.parallel,
    )


async def _lines_since(
    runtime: PluginRuntime, where: ConversationRef, since: datetime, limit: int
) -> list[str]:
    """The transcript since ``since``: from the channel when it can read its history,
    else from the store (what the bot saw)."""
    try:
        messages: Sequence[Message] = await runtime.channel_history(where, since=since)
    except NotImplementedError:
        pass
    else:
        return [_line(m.sender.display_name, "in", m.text) for m in messages[-limit:]]
    if where.thread_id is None:
        # the whole chat: every thread of a mailbox, every topic of a group
        rows = await runtime.store.chat_messages_since(
            where.channel, where.chat_id, since=since, limit=limit
        )
        return [_line(r.sender_name or r.sender_id, r.direction, r.text) for r in rows]
    conversation_id = await runtime.store.conversation_id(where)
    rows = await runtime.store.history(conversation_id, before_id=None, limit=limit)
    return [
        _line(r.sender_name or r.sender_id, r.direction, r.text)
        for r in rows
        if r.created_at is not None and r.created_at >= since
    ]


def _line(sender: str | None, direction: str, text: str) -> str:
    """One transcript line; ``""`` for what is not conversation (empty, a command)."""
    text = " ".join(text.split())
    if not text or text.startswith("/"):
        return ""
    return f"{'assistant' if direction == 'out' else sender or 'someone'}: {text}"


# -- digests ---------------------------------------------------------------------------------


@plugin.on_schedule(every=60)
async def digests(job: PluginRuntime) -> None:
    """Send each digest whose cron time has come since it last ran."""
    for digest in job.settings_as(SummarySettings).digests:
        try:
            await _maybe_send(job, digest)
        except Exception:  # one broken digest must not stop the others
            log.exception("digest %r failed", digest.name)


async def _maybe_send(job: PluginRuntime, digest: Digest, now: datetime | None = None) -> bool:
    """Send ``digest`` if it is due; whether it was."""
    zone = _zone(digest.timezone, "timezone")
    moment = (now or datetime.now(UTC)).astimezone(zone)
    key = f"digest:{digest.name}:last"
    last = await job.state.get(key)
    if last is None:
        await job.state.set(key, moment.isoformat())  # first start: from now on
        return False
    due = CronSchedule.parse(digest.cron, zone).next_after(datetime.fromisoformat(last))
    if due.astimezone(UTC) > moment.astimezone(UTC):  # instants: the clock may repeat an hour
        return False
    await job.state.set(key, moment.isoformat())  # at most once, even if sending fails
    settings = job.settings_as(SummarySettings)
    since = moment - timedelta(hours=digest.hours)
    lines = [
        line
        for line in await _lines_since(job, digest.source, since, settings.max_messages)
        if line
    ]
    if not lines and digest.skip_empty:
        log.info("digest %r: nothing said in the last %g hours", digest.name, digest.hours)
        return True
    text = await _summarize(job, settings, lines) if lines else "Nothing was said."
    header = f"{digest.name}: the last {digest.hours:g} hours in {digest.source.key}"
    await job.send(digest.to, Reply(f"{header}\n\n{text}"))
    return True


def _zone(name: str, key: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"{name!r} is not a known time zone") from None
