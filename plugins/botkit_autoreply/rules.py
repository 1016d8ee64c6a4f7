"""Auto-reply rules: their settings, their checks when parsed, and matching a message."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botkit import ConfigError, ConversationRef, Message

__all__ = [
    "DAYS",
    "AutoreplySettings",
    "DateRange",
    "Rule",
    "active_range",
    "check_rules",
    "matches",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class DateRange:
    """Dates, both included, in the rule's time zone (``2024-12-23`` to ``2025-01-01``)."""

    start: str
    end: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule (``[[plugins.autoreply.rules]]``); every condition given must hold.

    Attributes:
        name: names the rule in logs, annotations and errors.
        channels: only on these channels; empty: all.
        senders: only from these senders: ids or shell patterns (``"*@example.com"``).
        keywords: only when the text has one of these words or phrases (any case).
        pattern: only when this regular expression is found in the text.
        timezone: the time zone of ``hours``, ``days`` and ``dates`` (IANA name).
        hours: a daily window, ``"09:00-17:30"`` (``"22:00-06:00"`` runs past midnight).
        days: the weekdays of the window (``"mon"`` ... ``"sun"``); empty: every day.
        outside: match outside the ``hours``/``days`` window instead (after hours).
        dates: only on these dates (out of office).
        reply: the answer, with ``{sender}``, ``{channel}``, ``{rule}`` and ``{until}``
            (the last day of the current date range) filled in.
        instruction: let the model write the answer, following this instruction.
        classify: have the model route the message first, with this instruction:
            answer it (``reply``/``instruction``), hand it to a person, or ignore it.
        handoff_to: where a handed-off message is announced.
        handoff_reply: said to the sender when their message is handed to a person;
            empty: nothing.
        on_error: the route when classification fails: ``"answer"``, ``"handoff"``,
            ``"ignore"``, or ``"pass"`` (as if the rule had not matched).
        cooldown_minutes: answer one sender by this rule at most once in this many
            minutes; messages in between get no answer.
    """

    name: str
    channels: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    timezone: str = "UTC"
    hours: str | None = None
    days: tuple[str, ...] = ()
    outside: bool = False
    dates: tuple[DateRange, ...] = ()
    reply: str | None = None
    instruction: str | None = None
    classify: str | None = None
    handoff_to: ConversationRef | None = None
    handoff_reply: str = "Thank you. A person will get back to you soon."
    on_error: Literal["answer", "handoff", "ignore", "pass"] = "handoff"
    cooldown_minutes: float = 0


@dataclass(frozen=True, slots=True)
class AutoreplySettings:
    """``[plugins.autoreply]``.

    Attributes:
        rules: tried in order; the first that matches answers.
    """

    rules: tuple[Rule, ...] = ()

    def problems(self, key: str) -> Iterator[ConfigError]:
        """Checked when the table is parsed: see :func:`check_rules`."""
        return check_rules(self, key)


def check_rules(settings: AutoreplySettings, key: str) -> Iterator[ConfigError]:
    """Each fault of rules that could never work, naming the key at fault: a bad regex,
    time zone, window or date, a rule with no answer, a hand-off to nobody."""
    names: set[str] = set()
    for index, rule in enumerate(settings.rules):
        where = f"{key}.rules[{index}]"
        if rule.name in names:
            yield ConfigError(f"{where}.name", f"another rule is named {rule.name!r}")
        names.add(rule.name)
        if rule.reply is None and rule.instruction is None:
            yield ConfigError(where, "give reply (a template) or instruction (for the model)")
        if rule.classify is not None and rule.handoff_to is None:
            yield ConfigError(
                f"{where}.handoff_to",
                "is required with classify: the model may hand a message to a person",
            )
        if rule.pattern is not None:
            try:
                re.compile(rule.pattern)
            except re.error as exc:
                yield ConfigError(f"{where}.pattern", str(exc))
        try:
            ZoneInfo(rule.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield ConfigError(f"{where}.timezone", f"unknown time zone {rule.timezone!r}")
        if rule.hours is not None and not _HOURS.match(rule.hours):
            yield ConfigError(f"{where}.hours", 'must look like "09:00-17:00"')
        for day in rule.days:
            if day.lower()[:3] not in DAYS:
                yield ConfigError(f"{where}.days", f"{day!r} is not a weekday (mon ... sun)")
        if rule.outside and rule.hours is None and not rule.days:
            yield ConfigError(f"{where}.outside", "needs hours or days to be outside of")
        for n, span in enumerate(rule.dates):
            try:
                start, end = date.fromisoformat(span.start), date.fromisoformat(span.end)
            except ValueError:
                yield ConfigError(f"{where}.dates[{n}]", "dates look like 2024-12-24")
                continue
            if end < start:
                yield ConfigError(f"{where}.dates[{n}]", "end is before start")
        if rule.cooldown_minutes < 0:
            yield ConfigError(f"{where}.cooldown_minutes", "must not be negative")


def matches(rule: Rule, message: Message, now: datetime) -> bool:
    """Whether ``rule`` applies to ``message`` at ``now`` (an aware datetime)."""
    if rule.channels and message.channel not in rule.channels:
        return False
    if rule.senders and not any(
        fnmatch.fnmatchcase(message.sender.id.lower(), pattern.lower()) for pattern in rule.senders
    ):
        return False
    text = message.text
    if rule.keywords and not any(_has_phrase(text, keyword) for keyword in rule.keywords):
        return False
    if rule.pattern is not None and re.search(rule.pattern, text) is None:
        return False
    local = now.astimezone(ZoneInfo(rule.timezone))
    if rule.dates and active_range(rule, local.date()) is None:
        return False
    if rule.hours is not None or rule.days:
        return _in_window(rule, local) != rule.outside
    return True


def active_range(rule: Rule, day: date) -> DateRange | None:
    """The date range of ``rule`` that ``day`` falls in."""
    for span in rule.dates:
        if date.fromisoformat(span.start) <= day <= date.fromisoformat(span.end):
            return span
    return None


def _has_phrase(text: str, phrase: str) -> bool:
    words = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.search(rf"(?<!\w){words}(?!\w)", text, re.IGNORECASE) is not None


def _in_window(rule: Rule, local: datetime) -> bool:
    """Whether ``local`` is inside the weekly window of ``days`` and ``hours``."""
    weekday = local.weekday()  # Monday is 0
    if rule.hours is None:
        return DAYS[weekday] in _days(rule)
    found = _HOURS.match(rule.hours)
    assert found is not None  # checked when the settings were parsed
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    start = time(h1, m1)
    now = local.time().replace(tzinfo=None)
    if (h2, m2) == (24, 0) or (h2, m2) == (0, 0):
        inside, opened_on = now >= start, weekday
    else:
        end = time(h2, m2)
        if start <= end:
            inside, opened_on = start <= now < end, weekday
        else:  # past midnight: the window opened the day before when we are after midnight
            inside = now >= start or now < end
            opened_on = weekday if now >= start else (weekday - 1) % 7
    return inside and (not rule.days or DAYS[opened_on] in _days(rule))


def _days(rule: Rule) -> set[str]:
    return {d.lower()[:3] for d in rule.days} if rule.days else set(DAYS)
