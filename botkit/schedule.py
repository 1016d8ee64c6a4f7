"""Interval and five-field cron schedules for ``Plugin.on_schedule`` (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["CronSchedule", "IntervalSchedule", "Schedule"]


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


_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 6))


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A classic cron expression: minute hour day-of-month month day-of-week.

    Supports ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n`` / ``a-b/n``;
    day-of-week 0 or 7 is Sunday. As in cron, when both day fields are restricted a day
    matching either runs.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse ``expression``.

        Raises:
            ValueError: naming the field that is malformed.
        """
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(f"cron expression {expression!r} must have 5 fields")
        sets = []
        for text, (name, low, high) in zip(parts, _FIELDS, strict=True):
            top = 7 if name == "weekday" else high
            values = _parse_field(text, low, top, name)
            if name == "weekday":
                values = {0 if v == 7 else v for v in values}
            sets.append(frozenset(values))
        minutes, hours, days, months, weekdays = sets
        return cls(minutes, hours, days, months, weekdays, parts[2] != "*", parts[4] != "*")

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after ``moment``."""
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60 * 5):  # at most five years of minutes
            if candidate.month not in self.months:
                candidate = _first_of_next_month(candidate)
                continue
            if not self._day_matches(candidate):
                candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if candidate.hour not in self.hours:
                candidate = (candidate + timedelta(hours=1)).replace(minute=0)
                continue
            if candidate.minute not in self.minutes:
                candidate += timedelta(minutes=1)
                continue
            return candidate
        raise ValueError("cron expression never matches")

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # cron: Sunday is 0
        day_ok = moment.day in self.days
        weekday_ok = weekday in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def _parse_field(text: str, low: int, high: int, name: str) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        spec, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                start, end = low, high
            elif "-" in spec:
                a, b = spec.split("-", 1)
                start, end = int(a), int(b)
            else:
                start = end = int(spec)
        except ValueError:
            raise ValueError(f"cron {name} field {text!r} is malformed") from None
        if step < 1 or start < low or end > high or start > end:
            raise ValueError(f"cron {name} field {text!r} is out of range {low}-{high}")
        if step_text and spec != "*" and "-" not in spec:
            end = high
        values.update(range(start, end + 1, step))
    return values


def _first_of_next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0)
