"""``botkit usage``'s report: spend grouped by the dimensions asked for, since when asked.

The store groups model calls by day, model, channel and user (:meth:`UsageStore.report`);
this folds those rows into fewer dimensions (``--by model``) and reads ``--since``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from botkit.store import UsageRow, dollars

__all__ = ["DIMENSIONS", "Since", "UsageGroup", "group_usage", "parse_by", "parse_since"]

Dimension = Literal["day", "model", "channel", "user"]
DIMENSIONS: tuple[Dimension, ...] = ("day", "model", "channel", "user")
_UNITS = {"h": ("hours", timedelta(hours=1)), "d": ("days", timedelta(days=1))}
_UNITS["w"] = ("weeks", timedelta(weeks=1))


@dataclass(frozen=True, slots=True)
class Since:
    """Where a report starts, and how to say it (``in the last 7 days``)."""

    start: datetime
    words: str


def parse_since(text: str, *, now: datetime | None = None) -> Since:
    """``7d``, ``12h``, ``2w`` back from now, or a date (``2025-01-31``, from its start, UTC).

    Raises:
        ValueError: anything else, with what is accepted.
    """
    now = now or datetime.now(UTC)
    found = re.fullmatch(r"(\d+)([hdw])", text.strip())
    if found:
        count, unit = int(found.group(1)), found.group(2)
        name, step = _UNITS[unit]
        return Since(now - count * step, f"in the last {count} {name}")
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a span like 7d, 12h or 2w, nor a date like 2025-01-31"
        ) from None
    return Since(datetime(day.year, day.month, day.day, tzinfo=UTC), f"since {day.isoformat()}")


def parse_by(text: str) -> tuple[Dimension, ...]:
    """The dimensions in ``day,model,channel,user`` (any of them, in the report's order).

    Raises:
        ValueError: an unknown or repeated name, or none.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DIMENSIONS]
    if unknown or not names:
        raise ValueError(
            f"{text!r}: group by one or more of {', '.join(DIMENSIONS)}, comma-separated"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{text!r} names a dimension twice")
    return tuple(d for d in DIMENSIONS if d in names)


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """The calls, tokens and spend of one group (its ``key``: a value per dimension)."""

    key: tuple[str, ...]
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    unpriced_calls: int
    estimated_calls: int


def group_usage(rows: Iterable[UsageRow], by: Sequence[Dimension]) -> list[UsageGroup]:
    """``rows`` added up per value of the ``by`` dimensions, newest day first, then by
    the other dimensions' values."""
    totals: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        key = tuple(str(getattr(row, d)) for d in by)
        figures = totals.setdefault(key, [0, 0, 0, 0, 0, 0])
        for i, value in enumerate(
            (
                row.calls,
                row.prompt_tokens,
                row.completion_tokens,
                row.cost_nanos,
                row.unpriced_calls,
                row.estimated_calls,
            )
        ):
            figures[i] += value
    groups = [
        UsageGroup(key, n, p, o, dollars(c) or Decimal(0), u, e)
        for key, (n, p, o, c, u, e) in totals.items()
    ]
    groups.sort(key=lambda g: g.key)
    if "day" in by:  # newest first, the rest in order within a day (a stable sort)
        day = by.index("day")
        groups.sort(key=lambda g: g.key[day], reverse=True)
    return groups
