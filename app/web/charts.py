"""Small server-side SVG charts for the console: lines over time and horizontal bars.

No JavaScript and no library: the page works offline and prints. Each chart carries
a <title> and <desc> for screen readers, and the pages put the numbers in a table
next to it. Colours and dash patterns come from nurture.css (`.series-0` ...), so a
series can be told apart without colour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 540, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 26, 12, 30
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    values: Sequence[int]

    @property
    def total(self) -> int:
        return sum(self.values)


def nice_scale(largest: float) -> tuple[int, int]:
    """(top, step): a round top of the axis at or above `largest`, in at most 5 steps."""
    if largest <= 0:
        return 1, 1
    rough = largest / 5
    magnitude = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    step = max(1, int(step))
    return step * math.ceil(largest / step), step


def bucket_label(when: datetime, interval: str) -> str:
    if interval == "hour":
        return f"{when:%H:%M}"
    if interval == "month":
        return f"{when:%b %Y}"
    return f"{when:%b} {when.day}"


def line_chart(
    title: str,
    buckets: Sequence[datetime],
    series: Sequence[Series],
    *,
    interval: str = "day",
    chart_id: str = "chart",
) -> Markup:
    """One polyline per series over `buckets`, with axes, gridlines and point tooltips."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top, step = nice_scale(max((max(s.values, default=0) for s in series), default=0))
    n = len(buckets)

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(v: float) -> float:
        return TOP + plot_h - v * plot_h / top

    parts = [
        f'<g class="grid">{_grid(top, step, y)}</g>',
        f'<g class="xaxis">{_x_labels(buckets, interval, x)}</g>',
    ]
    for index, s in enumerate(series):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        name = escape(s.label.lower())
        dots = "".join(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3"><title>'
            f"{escape(bucket_label(buckets[i], interval))}: {v} {name}</title></circle>"
            for i, v in enumerate(s.values)
        )
        parts.append(f'<g class="series series-{index}"><polyline points="{points}"/>{dots}</g>')
    totals = ", ".join(f"{s.label} {s.total}" for s in series)
    span = (
        f"{bucket_label(buckets[0], interval)} to {bucket_label(buckets[-1], interval)}"
        if n
        else "no data"
    )
    return _svg(chart_id, title, f"{span}. Totals: {totals}.", WIDTH, HEIGHT, "".join(parts))


def _grid(top: int, step: int, y: Callable[[float], float]) -> str:
    out = []
    for value in range(0, top + 1, step):
        py = y(value)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
            f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{value}</text>'
        )
    return "".join(out)


def _x_labels(buckets: Sequence[datetime], interval: str, x: Callable[[int], float]) -> str:
    every = max(1, math.ceil(len(buckets) / MAX_X_LABELS))
    return "".join(
        f'<text x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{escape(bucket_label(buckets[i], interval))}</text>"
        for i in range(0, len(buckets), every)
    )


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    note: str = ""


def bar_chart(title: str, bars: Sequence[Bar], *, chart_id: str = "bars") -> Markup:
    """Horizontal bars, longest = largest value: the stage-to-stage funnel."""
    row_h, label_w, width = 34, 150, 820
    bar_room = width - label_w - 290  # room after the bar for "12 entered · 40% of ..."
    largest = max((b.value for b in bars), default=0) or 1
    parts = []
    for i, bar in enumerate(bars):
        top = 8 + i * row_h
        length = max(2.0, bar.value * bar_room / largest) if bar.value else 0
        label = bar.label if len(bar.label) <= 20 else bar.label[:19] + "…"
        parts.append(
            f'<g class="bar"><title>{escape(bar.label)}: {bar.value} {escape(bar.note)}</title>'
            f'<text class="label" x="{label_w - 8}" y="{top + 18}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{top + 4}" width="{length:.1f}" height="{row_h - 12}" rx="3"/>'
            f'<text x="{label_w + length + 8:.1f}" y="{top + 18}">{bar.value}'
            f'<tspan class="note"> {escape(bar.note)}</tspan></text></g>'
        )
    height = 16 + len(bars) * row_h
    description = "; ".join(f"{b.label} {b.value} {b.note}".strip() for b in bars)
    return _svg(chart_id, title, description, width, height, "".join(parts))


def _svg(chart_id: str, title: str, description: str, width: int, height: int, body: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>{body}</svg>'
    )
