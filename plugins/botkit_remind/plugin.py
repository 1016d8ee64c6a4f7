"""The remind plugin: reminders people ask for, and follow-ups the bot promises.

- ``remind`` (a tool the model calls for "remind me tomorrow at 9 to call Bob", and the
  command ``/remind <when> <text>``) schedules a one-off job that sends the reminder in
  the conversation it was asked in; the answer names the time it resolved.
- ``follow_up`` (a tool) schedules a message from the bot in the current conversation:
  "I'll check back on Friday" arrives on Friday, on whatever channel the talk is on.
- ``/reminders`` lists them, ``/reminders cancel <number>`` cancels one, ``/timezone``
  shows or sets the time zone a person's times are read in (kept per person, per
  channel, in the plugin's state).

Reminders are jobs of the core scheduler (``ctx.schedule``): stored in the database,
fired once cluster-wide, and sent through the outbox once, after a restart too. With the
offline stand-in, which calls no tools, "remind me ..." is read by a pattern instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from botkit import (
    ConfigError,
    Context,
    JobInfo,
    JobRun,
    Message,
    Plugin,
    Reply,
    SkipHandler,
    ToolArgumentsError,
    tool,
)
from botkit_remind.when import FORMS, WhenError, resolve, split_when, zone_named

__all__ = ["FollowUpArgs", "RemindArgs", "RemindSettings", "plugin"]

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_FIELDS = frozenset({"text", "name"})
_REMIND_ME = re.compile(r"^\s*(?:please\s+)?remind\s+me\b\s*(.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class RemindSettings:
    """``[plugins.remind]``.

    Attributes:
        timezone: the time zone of people who have not set theirs with ``/timezone``.
        default_time: the time of day for a day said without one ("tomorrow",
            "friday", a date), as HH:MM.
        message: what a reminder says; ``{text}`` is what to remember, ``{name}`` the
            name of the person who asked.
        max_per_user: the most reminders one person may have waiting.
    """

    timezone: str = "UTC"
    default_time: str = "09:00"
    message: str = "Reminder: {text}"
    max_per_user: int = 50

    def problems(self, key: str) -> Iterator[ConfigError]:
        """An unknown zone, a malformed time or message, found when the table is parsed."""
        if zone_named(self.timezone) is None:
            yield ConfigError(f"{key}.timezone", f"{self.timezone!r} is not a known time zone")
        if not _CLOCK.match(self.default_time):
            yield ConfigError(f"{key}.default_time", "must be a time as HH:MM, e.g. 09:00")
        fields = set(re.findall(r"{(\w*)}", self.message))
        if fields - _FIELDS or "{text}" not in self.message:
            yield ConfigError(f"{key}.message", "must contain {text}, and may contain {name}")
        if self.max_per_user < 1:
            yield ConfigError(f"{key}.max_per_user", "must be at least 1")

    @property
    def at(self) -> time:
        """:attr:`default_time` as a time."""
        hours, minutes = self.default_time.split(":")
        return time(int(hours), int(minutes))


@dataclass(frozen=True)
class RemindArgs:
    """Arguments of /remind.

    Attributes:
        when: when to remind, in the user's own words ("tomorrow 9:00", "in 10
            minutes", "friday 17:30") or as an ISO 8601 time ("2026-12-24T18:00"); it
            is read in the user's time zone, and the tool knows today's date.
        text: what to remind them of, e.g. "call Bob".
    """

    when: str
    text: str


@dataclass(frozen=True)
class FollowUpArgs:
    """Arguments of /follow_up.

    Attributes:
        when: when to check back, in the user's words ("friday", "in 2 days") or as an
            ISO 8601 time; read in the user's time zone.
        message: what the bot will say then, e.g. "Checking back: did Friday's
            release go out?"
    """

    when: str
    message: str


plugin = Plugin("remind", description="Reminders and follow-ups", settings_class=RemindSettings)


def _split(text: str, field: str) -> Mapping[str, Any]:
    try:
        when, rest = split_when(text)
    except WhenError as exc:
        raise ToolArgumentsError(str(exc)) from None
    return {"when": when, field: rest}


def _remind_command(text: str) -> Mapping[str, Any]:
    return _split(text, "text")


def _follow_up_command(text: str) -> Mapping[str, Any]:
    return _split(text, "message")


@tool(
    plugin,
    "remind",
    description=(
        "Set a reminder: at the given time the bot sends the text to the user in this "
        "conversation. Pass the time in the user's own words; the tool knows today's "
        "date and the user's time zone, and answers with the exact time it set, which "
        "you should tell the user."
    ),
    command_parser=_remind_command,
)
async def remind(args: RemindArgs, ctx: Context) -> str:
    """Set a reminder: /remind tomorrow 9:00 call Bob"""
    return await _remind(args, ctx)


async def _remind(args: RemindArgs, ctx: Context) -> str:
    text = " ".join(args.text.split())
    if not text:
        return "Say what to remind you of, e.g. /remind in 10 minutes stretch"
    return await _schedule(ctx, "reminder", args.when, {"text": text}, text)


@tool(
    plugin,
    "follow_up",
    description=(
        "Check back in this conversation later: at the given time the bot sends the "
        "message here, on whatever channel this conversation is on. Use it when you "
        "promise to follow up. Pass the time in the user's words; the tool answers with "
        "the exact time it set."
    ),
    command_parser=_follow_up_command,
)
async def follow_up(args: FollowUpArgs, ctx: Context) -> str:
    """Schedule a message from the bot in this conversation: /follow_up friday How did it go?"""
    message = args.message.strip()
    if not message:
        return "Say what the bot should say when it checks back."
    return await _schedule(ctx, "follow_up", args.when, {"message": message}, message)


async def _schedule(ctx: Context, job: str, when: str, data: dict[str, Any], what: str) -> str:
    """Resolve ``when`` in the sender's zone and schedule ``job``; the confirmation,
    or what is wrong."""
    settings = ctx.settings_as(RemindSettings)
    zone, zone_name = await _user_zone(ctx)
    now = ctx.now()
    try:
        due = resolve(when, now, zone, settings.at)
    except WhenError as exc:
        return f"{exc}\nUsage: /remind <when> <text>"
    if due <= now:
        return f"{_shown(due, zone, zone_name)} has already passed. Say a time in the future."
    if due - now > timedelta(days=3660):
        return "That is more than ten years away; I can't keep a reminder that long."
    sender = ctx.message.sender
    if job == "reminder":
        mine = [j for j in await ctx.pending_jobs(job="reminder") if _is_theirs(j, ctx)]
        if len(mine) >= settings.max_per_user:
            return (
                f"You have {len(mine)} reminders waiting, the most I keep for one person. "
                "Cancel one first (/reminders)."
            )
    job_id = await ctx.schedule(
        job=job,
        at=due,
        data={**data, "user": sender.id, "name": sender.display_name, "zone": zone_name},
        conversation=ctx.message.conversation,
        key=_key(ctx, job, when, what),
    )
    shown = _shown(due, zone, zone_name)
    if job == "follow_up":
        return f"I'll check back here {shown} (#{job_id})."
    return f"OK, I'll remind you {shown}: {what} (#{job_id}; /reminders to list or cancel)."


def _key(ctx: Context, job: str, when: str, what: str) -> str | None:
    """One job per message and arguments: the same message answered again after a crash
    (a command is run again) schedules nothing twice."""
    if ctx.message.id is None:
        return None
    digest = hashlib.sha256(f"{job}\n{when}\n{what}".encode()).hexdigest()[:24]
    return f"message:{ctx.message.id}:{digest}"


@plugin.job("reminder")
async def send_reminder(run: JobRun) -> None:
    """Send a reminder in the conversation it was asked in."""
    settings = run.settings_as(RemindSettings)
    data = run.data if isinstance(run.data, dict) else {}
    text = str(data.get("text", ""))
    await run.reply(settings.message.format(text=text, name=data.get("name") or ""))


@plugin.job("follow_up")
async def send_follow_up(run: JobRun) -> None:
    """Send the bot's follow-up in its conversation."""
    data = run.data if isinstance(run.data, dict) else {}
    await run.reply(str(data.get("message", "")))


# -- listing and cancelling --------------------------------------------------------------


@plugin.on_command("reminders", description="List your reminders: /reminders cancel <number>")
async def reminders(message: Message, ctx: Context) -> Reply | str:
    """List your reminders and this conversation's follow-ups, or cancel one."""
    words = ctx.args.split()
    if words and words[0].lower() == "cancel":
        if len(words) != 2 or not words[1].lstrip("#").isdigit():
            return "Usage: /reminders, or /reminders cancel <number>"
        return await _cancel(ctx, int(words[1].lstrip("#")))
    if words:
        return "Usage: /reminders, or /reminders cancel <number>"
    listed = await _listed(ctx)
    if not listed:
        return "You have no reminders. Set one with /remind in 10 minutes stretch"
    zone, zone_name = await _user_zone(ctx)
    lines = [_line(job, zone, zone_name) for job in listed]
    lines.append("Cancel one with /reminders cancel <number>.")
    return Reply("Your reminders:\n" + "\n".join(lines), markup="plain")


async def _listed(ctx: Context) -> list[JobInfo]:
    """The sender's reminders on this channel, and this conversation's follow-ups."""
    theirs = [j for j in await ctx.pending_jobs(job="reminder") if _is_theirs(j, ctx)]
    here = await ctx.pending_jobs(job="follow_up", conversation=ctx.message.conversation)
    return sorted([*theirs, *here], key=lambda j: (j.due_at, j.id))


def _is_theirs(job: JobInfo, ctx: Context) -> bool:
    data = job.data if isinstance(job.data, dict) else {}
    conversation = job.conversation
    return (
        data.get("user") == ctx.message.sender.id
        and conversation is not None
        and conversation.channel == ctx.message.channel
    )


def _line(job: JobInfo, zone: tzinfo, zone_name: str) -> str:
    data = job.data if isinstance(job.data, dict) else {}
    when = _shown(job.due_at, zone, zone_name)
    if job.job == "follow_up":
        return f"#{job.id} {when}: follow-up here: {data.get('message', '')}"
    return f"#{job.id} {when}: {data.get('text', '')}"


async def _cancel(ctx: Context, job_id: int) -> str:
    found = next((j for j in await _listed(ctx) if j.id == job_id), None)
    if found is None or not await ctx.cancel_job(job_id):
        return f"You have no reminder #{job_id}. /reminders lists them."
    data = found.data if isinstance(found.data, dict) else {}
    what = data.get("text") or data.get("message") or ""
    return f"Cancelled #{job_id}: {what}"


# -- time zones ---------------------------------------------------------------------------


@plugin.on_command("timezone", description="Show or set your time zone: /timezone Europe/Berlin")
async def timezone(message: Message, ctx: Context) -> str:
    """Show your time zone, or set it (an IANA name such as Europe/Berlin)."""
    name = ctx.args.strip()
    if not name:
        current, current_name = await _user_zone(ctx)
        now = ctx.now().astimezone(current).strftime("%H:%M")
        return (
            f"Your time zone is {current_name} (it is {now} there). "
            "Set it with /timezone Europe/Berlin"
        )
    zone = zone_named(name)
    if zone is None:
        return (
            f"I don't know the time zone {name!r}. Use an IANA name such as Europe/Berlin, "
            "America/New_York or Asia/Tokyo."
        )
    await ctx.state.set(_zone_key(message), zone.key)
    now = ctx.now().astimezone(zone).strftime("%H:%M")
    return (
        f"Your time zone is now {zone.key} (it is {now} there). "
        "Reminders you set from now on use it."
    )


def _zone_key(message: Message) -> str:
    return f"zone:{message.channel}:{message.sender.id}"


async def _user_zone(ctx: Context) -> tuple[ZoneInfo, str]:
    """The sender's time zone and its name: theirs (``/timezone``), else the default."""
    stored = await ctx.state.get(_zone_key(ctx.message))
    zone = zone_named(stored) if isinstance(stored, str) else None
    if zone is None:
        zone = zone_named(ctx.settings_as(RemindSettings).timezone) or ZoneInfo("UTC")
    return zone, zone.key


def _shown(moment: datetime, zone: tzinfo, zone_name: str) -> str:
    """``on Thu 24 Dec 2026 at 09:00 (Europe/Berlin)``."""
    local = moment.astimezone(zone)
    return f"on {local:%a} {local.day} {local:%b %Y} at {local:%H:%M} ({zone_name})"


# -- without a model that calls tools ------------------------------------------------------


@plugin.on_message(_REMIND_ME)
async def remind_me(message: Message, ctx: Context) -> str:
    """ "remind me tomorrow at 9 to call Bob", read without the model when the bot runs on
    the offline stand-in (which calls no tools); a real model gets the words instead."""
    if not ctx.uses_stand_in or ctx.match is None:
        raise SkipHandler
    try:
        when, text = split_when(ctx.match.group(1))
    except WhenError as exc:
        return f"{exc}\nOr use /remind <when> <text>. Forms: {FORMS}."
    return await _remind(RemindArgs(when, text), ctx)
