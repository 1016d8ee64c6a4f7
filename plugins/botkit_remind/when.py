"""When a reminder is due: a few ways people say a time, read in their time zone.

Pure functions, no clock of their own: ``now`` is given.

- ``in 10 minutes``, ``in 2 hours``, ``in an hour``, ``in half an hour``, ``in 3 days``,
  ``in 1 week``: minutes and hours are real time; days and weeks keep the time of day
  on the wall clock (``in 1 day`` at 9:00 is 9:00, across a daylight-saving change too);
- ``today 17:00``, ``tonight``, ``tomorrow 9:00``, ``tomorrow at 9am``, ``friday 17:30``,
  ``next monday``, ``9pm tomorrow``: a day (a weekday is the next one after today) and a
  time (default ``default_time``; ``tonight`` is 20:00);
- ``at 17:00``, ``5pm``, ``noon``, ``midnight``: the next time the clock shows it;
- ``2026-12-24 18:00``, ``2026-12-24T18:00``, ``2026-12-24`` (at ``default_time``), and
  ISO 8601 with an offset (``2026-12-24T18:00+01:00``), which then wins over the zone.

A wall time the clock skips (spring forward) is taken as the first minute after the gap;
one the clock shows twice (fall back), as the first of the two.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, available_timezones

__all__ = ["FORMS", "WhenError", "resolve", "split_when", "zone_named"]

#: Examples for error messages.
FORMS = "in 10 minutes, tomorrow 9:00, friday 17:30, 2026-12-24 18:00"

_UNITS = {
    "s": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "second": "seconds",
    "seconds": "seconds",
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
}
_WEEKDAYS = {
    name: index
    for index, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
}
_RELATIVE = re.compile(r"^in\s+(an?|half\s+an?|\d+(?:\.\d+)?)\s*([a-z]+)$")
_TIME = re.compile(r"^(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?$")
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[ t]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:z|[+-]\d{2}:?\d{2})?$"
)
_TONIGHT = time(20, 0)
_LONGEST = timedelta(days=3660)  # ten years: further is a typo, not a plan


class WhenError(ValueError):
    """A time that cannot be read; the message says what was wrong and what works.

    Attributes:
        form_known: the words have a form this module reads (a date, "in N units"),
            and something in them is wrong (a day that does not exist, a unit).
    """

    def __init__(self, message: str, *, form_known: bool = True) -> None:
        super().__init__(message)
        self.form_known = form_known


def resolve(expression: str, now: datetime, zone: tzinfo, default_time: time) -> datetime:
    """The instant ``expression`` names, read at ``now`` in ``zone``; aware, in ``zone``
    (or in the offset the expression gave).

    Raises:
        WhenError: not a form this module reads, or a date that does not exist.
    """
    text = " ".join(expression.lower().strip().rstrip(".!,;").split())
    local = now.astimezone(zone)
    if not text:
        raise WhenError(f"say when, for example: {FORMS}")
    if _ISO.match(text):
        return _iso(text, zone, default_time)
    found = _RELATIVE.match(text)
    if found is not None:
        return _relative(found.group(1), found.group(2), local, zone, expression)
    day, clock = _day_and_time(text.removeprefix("on ").removeprefix("at "), local)
    if day is None and clock is None:
        raise WhenError(
            f"I can't tell when {expression.strip()!r} is. Try: {FORMS}.", form_known=False
        )
    if day is None:
        assert clock is not None
        moment = _on(local.date(), clock, zone)
        return moment if moment > local else _on(local.date() + timedelta(days=1), clock, zone)
    if clock is None:
        if day == local.date() and text not in ("tonight",):
            raise WhenError(f"say what time {expression.strip()!r}, e.g. 'today 17:00'")
        clock = _TONIGHT if text == "tonight" else default_time
    return _on(day, clock, zone)


def split_when(text: str) -> tuple[str, str]:
    """``"tomorrow 9:00 call Bob"`` → ``("tomorrow 9:00", "call Bob")``: the longest
    leading words that read as a time, else the longest trailing ones ("call Bob
    tomorrow at 9"), and the rest (a leading "to" or "that" dropped).

    Raises:
        WhenError: no words read as a time, or nothing is left to be reminded of.
    """
    words = text.split()
    if words and words[0].lower() == "me":  # "/remind me in 5 minutes ..."
        words = words[1:]
    probe = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # any day: only the form is checked
    splits = [(words[:i], words[i:]) for i in range(len(words), 0, -1)]
    splits += [(words[i:], words[:i]) for i in range(len(words)) if i]
    closest: WhenError | None = None  # what is wrong with the longest lead of a known form
    for index, (when, rest) in enumerate(splits):
        try:
            resolve(" ".join(when), probe, UTC, time(9, 0))
        except WhenError as exc:
            if closest is None and exc.form_known and index < len(words):
                closest = exc
            continue
        while rest and rest[0].lower() in ("to", "that", "about", "-", ":"):
            rest = rest[1:]
        if not rest:
            raise WhenError("say what to remind you of, e.g. '/remind in 10 minutes stretch'")
        return " ".join(when), " ".join(rest)
    if closest is not None:
        raise closest
    head = " ".join(words[:3]) or text
    raise WhenError(f"I can't tell when {head!r} is. Try: {FORMS}.", form_known=False)


def _iso(text: str, zone: tzinfo, default_time: time) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.upper().replace(" ", "T", 1))
    except ValueError:
        raise WhenError(f"{text!r} is not a real date and time") from None
    if len(text) == 10:  # a date alone
        parsed = datetime.combine(parsed.date(), default_time)
    if parsed.tzinfo is not None:
        return parsed
    return _on(parsed.date(), parsed.time(), zone)


def _relative(amount: str, unit_word: str, local: datetime, zone: tzinfo, said: str) -> datetime:
    unit = _UNITS.get(unit_word)
    if unit is None:
        raise WhenError(f"I can't tell how long {said.strip()!r} is: say minutes, hours or days")
    if amount in ("a", "an"):
        count = 1.0
    elif amount.startswith("half"):
        count = 0.5
    else:
        count = float(amount)
    if count <= 0:
        raise WhenError("say a time in the future")
    if unit in ("days", "weeks"):
        days = count * (7 if unit == "weeks" else 1)
        if days > _LONGEST.days:
            raise WhenError("that is too far ahead")
        whole = int(days)
        moment = _on(local.date() + timedelta(days=whole), local.time(), zone)
        return moment + timedelta(days=days - whole)
    delta = timedelta(**{unit: count})
    if delta > _LONGEST:
        raise WhenError("that is too far ahead")
    return (local.astimezone(UTC) + delta).astimezone(zone)


def _day_and_time(text: str, local: datetime) -> tuple[date | None, time | None]:
    """A day word and a time, in either order (``tomorrow at 9``, ``9pm tomorrow``)."""
    words = text.split()
    for cut in range(len(words) + 1):
        first, second = " ".join(words[:cut]), " ".join(words[cut:])
        for day_text, time_text in ((first, second), (second, first)):
            day = _day(day_text, local) if day_text else None
            clock = _time(time_text.removeprefix("at ")) if time_text else None
            if (day is not None or not day_text) and (clock is not None or not time_text):
                return day, clock
    return None, None


def _day(text: str, local: datetime) -> date | None:
    today = local.date()
    if text in ("today", "tonight"):
        return today
    if text in ("tomorrow", "tmrw", "tomorrow morning"):
        return today + timedelta(days=1)
    name = text.removeprefix("next ").removeprefix("on ")
    weekday = _WEEKDAYS.get(name)
    if weekday is None:
        return None
    ahead = (weekday - today.weekday() - 1) % 7 + 1  # the next one after today
    return today + timedelta(days=ahead)


def _time(text: str) -> time | None:
    if text == "noon":
        return time(12, 0)
    if text == "midnight":
        return time(0, 0)
    found = _TIME.match(text)
    if found is None:
        return None
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    meridiem = (found.group(3) or "").replace(".", "")
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _on(day: date, clock: time, zone: tzinfo) -> datetime:
    """``day`` at ``clock`` on the wall clock of ``zone``: a time the clock skips is
    the first minute after the gap, one it repeats the first of the two."""
    wall = datetime.combine(day, clock.replace(tzinfo=None, fold=0))
    moment = wall.replace(tzinfo=zone)
    while moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        wall = (wall + timedelta(minutes=1)).replace(second=0, microsecond=0)
        moment = wall.replace(tzinfo=zone)
    return moment


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name`` (any case: ``europe/berlin``), or ``None``."""
    known = _zones().get(name.strip().lower())
    return ZoneInfo(known) if known is not None else None


@functools.cache
def _zones() -> dict[str, str]:
    """Every IANA zone name this system knows, by its lowercase spelling."""
    return {name.lower(): name for name in available_timezones()}
