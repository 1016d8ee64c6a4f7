"""Interval and cron schedules for ``Plugin.on_schedule`` and plugins' own timers.

Cron expressions are read and matched by cronsim (Debian cron's syntax, with month and
day names, ``L``, ``LW`` and ``#``). This module adds what cronsim leaves to its caller:
the ``@daily``-style aliases, exactly five fields, error messages that name the field,
and one rule for daylight-saving changes in the schedule's time zone:

- a schedule that names its hours (any hour field but ``*``) runs on wall-clock times:
  a time the clock skips in spring runs once, at the first instant after the gap; a
  time the clock shows twice in autumn runs once, the first time;
- a schedule whose hour field is ``*`` runs every hour (or more often) of real time, as
  cron does: an hourly job runs an hour after the last one across either change, never
  at a time the clock skips, and in both passes of the hour the clock repeats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from cronsim import CronSim, CronSimError

__all__ = ["ALIASES", "CronSchedule", "IntervalSchedule", "Schedule"]


class Schedule(Protocol):
    """When a job runs next."""

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after ``moment``."""
        ...


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Every ``seconds`` seconds."""

    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        """``moment`` plus the interval."""
        return moment + timedelta(seconds=self.seconds)


#: The ``@name`` shorthands crontab accepts, and the five fields each stands for.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# cronsim's field names (its errors say "Bad hour"), ours, and each field's numbers
_FIELDS = {
    "minute": ("minute", 0, 59),
    "hour": ("hour", 0, 23),
    "day-of-month": ("day", 1, 31),
    "month": ("month", 1, 12),
    "day-of-week": ("weekday", 0, 7),
}
_NUMBER = re.compile(r"(?<![/#\d])\d+")  # a value, not a step (/n) nor an nth (#n)
_ANY_DAY = datetime(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A cron expression: five fields (minute hour day-of-month month day-of-week) or an
    alias (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``).

    Fields take ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n`` and
    ``a-b/n``, month and day names (``JAN``, ``mon-fri``, any case), ``L`` (the last day
    of the month; ``5L``: its last Friday), ``LW`` (its last weekday) and ``#`` (``1#1``:
    its first Monday); day-of-week 0 or 7 is Sunday. As in cron, when both day fields
    are restricted a day matching either runs.

    Attributes:
        expression: the expression as written.
        zone: the time zone its times are read in; ``None``: the zone of the moment
            given to :meth:`next_after` (UTC for the scheduler).
    """

    expression: str
    zone: tzinfo | None = None

    @classmethod
    def parse(cls, expression: str, zone: tzinfo | None = None) -> CronSchedule:
        """Check ``expression`` and make a schedule of it, read in ``zone``.

        Raises:
            ValueError: naming the field that is malformed, or saying the expression
                never matches.
        """
        fields = _fields(expression)
        try:
            next(CronSim(fields, _ANY_DAY))
        except CronSimError as exc:
            raise _explain(expression, fields, exc) from None
        except StopIteration:
            raise ValueError(f"cron expression {expression!r} never matches") from None
        return cls(expression, zone)

    def next_after(self, moment: datetime) -> datetime:
        """The first time the schedule runs strictly after ``moment``, in its zone.

        Raises:
            ValueError: the expression is malformed or matches no time in 50 years.
        """
        fields = _fields(self.expression)
        zone = self.zone if self.zone is not None else moment.tzinfo
        try:
            if zone is None:  # naive: plain wall times, no zone to change its clocks
                return next(CronSim(fields, moment))
            after = moment.astimezone(zone)
            if fields.split()[1] == "*":
                return _next_real(fields, after, zone)
            return _next_wall(fields, after, zone)
        except CronSimError as exc:
            raise _explain(self.expression, fields, exc) from None
        except StopIteration:
            raise ValueError(f"cron expression {self.expression!r} never matches") from None


def _fields(expression: str) -> str:
    """The five fields of ``expression`` (aliases spelt out).

    Raises:
        ValueError: an unknown alias, or not five fields.
    """
    text = expression.strip()
    if text.startswith("@"):
        fields = ALIASES.get(text.lower())
        if fields is None:
            raise ValueError(
                f"cron expression {expression!r} is not an alias botkit knows "
                f"(use one of {', '.join(ALIASES)})"
            )
        return fields
    if len(text.split()) != 5:
        raise ValueError(f"cron expression {expression!r} must have 5 fields")
    return text


def _next_wall(fields: str, after: datetime, zone: tzinfo) -> datetime:
    """The first wall-clock match whose instant is later than ``after``.

    Wall times are matched without a zone, then placed in it: a skipped one at the end
    of its gap, a repeated one at its first occurrence. Both keep the instants in the
    order of the wall times, so the first instant past ``after`` is the answer; from
    inside the repeated hour the earlier occurrences are passed over.
    """
    wall = after.replace(tzinfo=None)
    while True:
        wall = next(CronSim(fields, wall))
        due = _first_instant(wall, zone)
        if due.astimezone(UTC) > after.astimezone(UTC):
            return due


def _next_real(fields: str, after: datetime, zone: tzinfo) -> datetime:
    """The first instant later than ``after`` whose reading on the zone's clock matches
    (cronsim steps in real time for a ``*`` hour field)."""
    while True:
        due = next(CronSim(fields, after))
        # cronsim can land on a midnight the clock skips (zones that change at 00:00):
        # that reading is taken as the instant after the gap
        due = due.astimezone(UTC).astimezone(zone)
        if due.astimezone(UTC) > after.astimezone(UTC):
            return due
        after = due


def _first_instant(wall: datetime, zone: tzinfo) -> datetime:
    """``wall`` in ``zone``: the first occurrence if the clock shows it twice, the first
    valid minute after the gap if the clock skips it."""
    moment = wall.replace(tzinfo=zone, fold=0)
    while moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        wall += timedelta(minutes=1)  # gaps begin and end on whole minutes
        moment = wall.replace(tzinfo=zone, fold=0)
    return moment


def _explain(expression: str, fields: str, error: CronSimError) -> ValueError:
    """cronsim's "Bad hour" as a message naming the field, its text and its range."""
    cronsim_name = str(error).removeprefix("Bad ")
    if cronsim_name not in _FIELDS:
        return ValueError(f"cron expression {expression!r} is malformed ({error})")
    name, low, high = _FIELDS[cronsim_name]
    position = list(_FIELDS).index(cronsim_name)
    text = fields.split()[position]
    values = [int(n) for n in _NUMBER.findall(text)]
    if any(not low <= value <= high for value in values):
        return ValueError(f"cron {name} field {text!r} is out of range {low}-{high}")
    alone = ["*"] * 5
    alone[position] = text
    try:
        CronSim(" ".join(alone), _ANY_DAY)
    except CronSimError:
        return ValueError(f"cron {name} field {text!r} is malformed")
    # the field is fine alone: together with the others it names no real date
    return ValueError(f"cron expression {expression!r} never matches ({name} {text!r})")
