"""Spend over time: ``botkit usage``'s rows summed by day and one split (model, channel or
user), drawn as stacked bars in inline SVG (no script, nothing fetched: works offline),
with the figures in a table below."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from botkit.admin.templates import Html, esc, fill, join, money
from botkit.store import UsageRow

__all__ = [
    "METRICS",
    "SPLITS",
    "Metric",
    "SpendCell",
    "Split",
    "bar_chart",
    "days_between",
    "spend_cells",
    "spend_page",
]

Split = Literal["model", "channel", "user"]
Metric = Literal["cost", "tokens", "calls"]
SPLITS: tuple[Split, ...] = ("model", "channel", "user")
METRICS: tuple[Metric, ...] = ("cost", "tokens", "calls")
SERIES = 7  # the biggest series drawn apart; the rest are drawn together as "other"
OTHER = "(other)"
COLOURS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899")
OTHER_COLOUR = "#9ca3af"
WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 900, 260, 100, 12, 28


@dataclass(slots=True)
class SpendCell:
    """Calls, tokens and cost of one day and one value of the split."""

    day: str
    key: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0
    unpriced_calls: int = 0
    estimated_calls: int = 0

    def value(self, metric: Metric) -> int:
        """What the chart draws for this cell."""
        if metric == "cost":
            return self.cost_nanos
        if metric == "tokens":
            return self.prompt_tokens + self.completion_tokens
        return self.calls


def label(key: str) -> str:
    """A split's value as shown (calls with no channel or user are ``(none)``)."""
    return key or "(none)"


def spend_cells(rows: Sequence[UsageRow], by: Split) -> list[SpendCell]:
    """``rows`` (by day, model, channel and user) summed by day and ``by``: newest day
    first, then by key."""
    cells: dict[tuple[str, str], SpendCell] = {}
    for row in rows:
        key = getattr(row, by)
        cell = cells.setdefault((row.day, key), SpendCell(row.day, key))
        cell.calls += row.calls
        cell.prompt_tokens += row.prompt_tokens
        cell.completion_tokens += row.completion_tokens
        cell.cost_nanos += row.cost_nanos
        cell.unpriced_calls += row.unpriced_calls
        cell.estimated_calls += row.estimated_calls
    by_key = sorted(cells.values(), key=lambda c: c.key)
    return sorted(by_key, key=lambda c: c.day, reverse=True)  # stable: keys stay sorted


def days_between(first: date, last: date) -> list[str]:
    """Every day from ``first`` to ``last``, as ``YYYY-MM-DD``."""
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def bar_chart(cells: Sequence[SpendCell], days: Sequence[str], metric: Metric) -> Html:
    """Stacked bars, one a day (``days``, oldest first), one colour a series; a legend."""
    totals: dict[str, int] = {}
    for cell in cells:
        totals[cell.key] = totals.get(cell.key, 0) + cell.value(metric)
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    drawn = ranked[:SERIES]
    colour = {key: COLOURS[i] for i, key in enumerate(drawn)}
    stacks: dict[str, dict[str, int]] = {day: {} for day in days}
    for cell in cells:
        if cell.day in stacks:
            series = cell.key if cell.key in colour else OTHER
            stacks[cell.day][series] = stacks[cell.day].get(series, 0) + cell.value(metric)
    top = max((sum(stack.values()) for stack in stacks.values()), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    every = max(1, len(days) // 10)
    shapes: list[Html] = []
    for i, day in enumerate(days):
        x = LEFT + i * slot + slot * 0.15
        y: float = TOP + plot_h
        for series in [*drawn, OTHER]:
            value = stacks[day].get(series, 0)
            if value <= 0:
                continue
            height = value / top * plot_h
            y -= height
            shapes.append(
                fill(
                    '<rect x="$x" y="$y" width="$w" height="$h" fill="$colour" '
                    'data-day="$day" data-key="$key" data-value="$value">'
                    "<title>$day · $name: $shown</title></rect>",
                    x=f"{x:.1f}",
                    y=f"{y:.1f}",
                    w=f"{slot * 0.7:.1f}",
                    h=f"{height:.1f}",
                    colour=colour.get(series, OTHER_COLOUR),
                    day=day,
                    key=series,
                    value=value,
                    name=label(series),
                    shown=_shown(value, metric),
                )
            )
        if i % every == 0:
            shapes.append(
                fill(
                    '<text x="$x" y="$y" font-size="11" fill="#4b5563">$text</text>',
                    x=f"{LEFT + i * slot:.1f}",
                    y=HEIGHT - 8,
                    text=day[5:],
                )
            )
    axis = fill(
        '<line x1="$l" y1="$b" x2="$r" y2="$b" stroke="#9ca3af"/>'
        '<text x="4" y="$t" font-size="11" fill="#4b5563">$top</text>'
        '<text x="4" y="$b" font-size="11" fill="#4b5563">0</text>',
        l=LEFT,
        r=WIDTH - 10,
        b=TOP + plot_h,
        t=TOP + 10,
        top=_shown(top, metric),
    )
    legend = join(
        fill(
            '<span><i class="swatch" style="background:$colour"></i>$name</span>',
            colour=colour.get(series, OTHER_COLOUR),
            name=label(series),
        )
        for series in [*drawn, *([OTHER] if len(ranked) > len(drawn) else [])]
    )
    return fill(
        '<figure><svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 $w $h" '
        'width="100%" class="chart" aria-label="$title"><title>$title</title>$axis$shapes'
        '</svg><figcaption class="legend">$legend</figcaption></figure>',
        w=WIDTH,
        h=HEIGHT,
        title=f"{metric} by day",
        axis=axis,
        shapes=join(shapes),
        legend=legend if ranked else esc("nothing spent in these days"),
    )


def _shown(value: int, metric: Metric) -> str:
    if metric == "cost":
        return money(value)
    return f"{value:,} {'tokens' if metric == 'tokens' else 'calls'}"


def spend_page(
    cells: Sequence[SpendCell], days: Sequence[str], *, by: Split, metric: Metric, span: int
) -> Html:
    """Spend by day as a chart, split by ``by``, and the figures it draws."""

    def choice(name: str, values: Sequence[str], current: str) -> Html:
        return join(
            fill(
                '<label><input type="radio" name="$name" value="$v"$c> $v</label> ',
                name=name,
                v=v,
                c=Html(" checked") if v == current else Html(""),
            )
            for v in values
        )

    form = fill(
        '<form method="get" action="/admin/spend" class="search">split by $by '
        '· show $metric · last <input name="days" value="$days" size="3"> days '
        '<button type="submit">Show</button></form>',
        by=choice("by", SPLITS, by),
        metric=choice("metric", METRICS, metric),
        days=span,
    )
    rows = join(
        fill(
            '<tr class="spend" data-day="$day" data-key="$key" data-calls="$calls" '
            'data-cost-nanos="$nanos" data-prompt="$p" data-completion="$o"><td>$day</td>'
            '<td>$name</td><td class="num">$calls</td><td class="num">$p</td>'
            '<td class="num">$o</td><td class="num">$cost</td><td class="est">$note</td></tr>',
            day=c.day,
            key=c.key,
            name=label(c.key),
            calls=c.calls,
            nanos=c.cost_nanos,
            p=c.prompt_tokens,
            o=c.completion_tokens,
            cost=money(c.cost_nanos),
            note=_spend_note(c),
        )
        for c in cells
    )
    total = sum(c.cost_nanos for c in cells)
    tokens = sum(c.prompt_tokens + c.completion_tokens for c in cells)
    return fill(
        '$form$chart<p>Total: <strong class="total">$total</strong> · $tokens tokens · '
        "$calls calls (the same figures as <code>botkit usage --days $days</code>)</p>"
        '<table><thead><tr><th>day (UTC)</th><th>$by</th><th class="num">calls</th>'
        '<th class="num">prompt tokens</th><th class="num">output tokens</th>'
        '<th class="num">cost</th><th></th></tr></thead><tbody>$rows</tbody></table>',
        form=form,
        chart=bar_chart(cells, days, metric),
        total=money(total),
        tokens=f"{tokens:,}",
        calls=sum(c.calls for c in cells),
        days=span,
        by=by,
        rows=rows,
    )


def _spend_note(cell: SpendCell) -> str:
    notes = []
    if cell.unpriced_calls:
        notes.append(f"+{cell.unpriced_calls} unpriced")
    if cell.estimated_calls:
        notes.append(f"{cell.estimated_calls} of {cell.calls} calls estimated")
    return ", ".join(notes)
