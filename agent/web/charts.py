"""Server-side SVG charts for the console: a burn-up (line), bars and stacked bars.

Each chart is one ``<svg role="img">`` scaled by its ``viewBox`` (it fills its box at any width), with a
``<title>`` and a ``<desc>`` that say what it shows; the page puts a table with the same numbers after it
(the text alternative). Every piece of text is escaped here (labels come from stations: a model name or
asset tag may hold ``<script>``), and nothing is styled inline: series carry classes (``series-0`` …) that
``static/charts.css`` colours, so the console's CSP (no inline style) holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 720
SERIES = 6  # classes series-0 … series-5 in charts.css; more series reuse them in turn


def _text(value: object) -> str:
    return str(escape(str(value)))


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_top(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power


def _frame(chart_id: str, title: str, description: str, height: int, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" id="{_text(chart_id)}" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'preserveAspectRatio="xMidYMid meet" aria-labelledby="{_text(chart_id)}-title {_text(chart_id)}-desc" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{_text(chart_id)}-title">{_text(title)}</title>'
        f'<desc id="{_text(chart_id)}-desc">{_text(description)}</desc>' + "".join(body) + "</svg>")


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


def burn_up(chart_id: str, title: str, description: str, days: Sequence[str], cumulative: Sequence[int],
            target: int, daily: Sequence[int] | None = None) -> Markup:
    """Cumulative devices done per day (a line) up to ``target`` (a dashed line), with ``daily`` as bars."""
    height, left, right, top, bottom = 280, 64, 16, 16, 40
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    peak = _nice_top(max([target, *cumulative, 1]) * 1.08)  # headroom above the total for its label
    count = max(len(days), 1)

    def x(index: float) -> float:
        return left + (index + 0.5) * plot_w / count

    def y(value: float) -> float:
        return top + plot_h - value * plot_h / peak

    body = [f'<g class="axis"><line x1="{left}" y1="{top + plot_h}" x2="{WIDTH - right}" y2="{top + plot_h}"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/></g>']
    for step in range(5):
        value = peak * step / 4
        body.append(f'<g class="grid"><line x1="{left}" y1="{_number(y(value))}" x2="{WIDTH - right}" '
                    f'y2="{_number(y(value))}"/></g><text class="tick" x="{left - 6}" y="{_number(y(value) + 4)}" '
                    f'text-anchor="end">{_text(f"{round(value):,}")}</text>')
    if daily:
        daily_peak = max(max(daily), 1)
        bar = max(plot_w / count * 0.7, 1.0)
        body.append(f'<text class="tick" x="{left + 8}" y="{top + 14}">'
                    f'{_text(f"bars: done each day, on their own scale (most {daily_peak:,})")}</text>')
        body.append('<g class="series-1 daily">')
        for index, value in enumerate(daily):
            if value:
                bar_h = value * plot_h * 0.35 / daily_peak  # the daily counts on their own scale, a third high
                body.append(f'<rect x="{_number(x(index) - bar / 2)}" y="{_number(top + plot_h - bar_h)}" '
                            f'width="{_number(bar)}" height="{_number(bar_h)}"><title>{_text(days[index])}: '
                            f'{value:,} that day</title></rect>')
        body.append("</g>")
    body.append(f'<g class="target"><line x1="{left}" y1="{_number(y(target))}" x2="{WIDTH - right}" '
                f'y2="{_number(y(target))}"/></g><text class="label" x="{WIDTH - right - 4}" '
                f'y="{_number(y(target) - 6)}" text-anchor="end">{_text(f"programme total {target:,}")}</text>')
    if cumulative:
        points = " ".join(f"{_number(x(i))},{_number(y(v))}" for i, v in enumerate(cumulative))
        body.append(f'<g class="series-0 line"><polyline points="{points}"/>'
                    f'<circle cx="{_number(x(len(cumulative) - 1))}" cy="{_number(y(cumulative[-1]))}" r="4"/></g>')
        # the last value above its point, or below it when the total's label is there
        near = abs(y(cumulative[-1]) - y(target)) < 26
        label_y = y(cumulative[-1]) + 22 if near else max(y(cumulative[-1]) - 10, top + 12)
        body.append(f'<text class="label" x="{_number(x(len(cumulative) - 1) - 8)}" '
                    f'y="{_number(label_y)}" text-anchor="end">{_text(f"{cumulative[-1]:,}")}</text>')
    every = max(1, math.ceil(count / 8))
    for index, day in enumerate(days):
        # every ``every``-th day and the last, but not a regular one so near the last that the two overlap
        if (index % every == 0 and count - 1 - index >= max(every / 2, 1)) or index == count - 1:
            body.append(f'<text class="tick" x="{_number(x(index))}" y="{height - bottom + 18}" '
                        f'text-anchor="middle">{_text(day[5:] if len(day) == 10 else day)}</text>')
    return _frame(chart_id, title, description, height, body)


def bars(chart_id: str, title: str, description: str, labels: Sequence[str], values: Sequence[float],
         *, unit: str = "") -> Markup:
    """One horizontal bar per label, its value written at its end."""
    return stacked_bars(chart_id, title, description, labels, [("", list(values))], unit=unit, legend=False)


def stacked_bars(chart_id: str, title: str, description: str, labels: Sequence[str],
                 series: Sequence[tuple[str, Sequence[float]]], *, unit: str = "", legend: bool = True) -> Markup:
    """One horizontal bar per label, split into ``series`` (name, one value per label), with a legend."""
    row, left, right, top = 30, 200, 80, 8
    legend_h = 28 if legend and series else 0
    height = top + legend_h + row * max(len(labels), 1) + 8
    plot_w = WIDTH - left - right
    totals = [sum(values[index] for _, values in series) for index in range(len(labels))]
    peak = max([*totals, 1])
    body: list[str] = []
    if legend_h:
        place = left
        for number, (name, _) in enumerate(series):
            body.append(f'<g class="series-{number % SERIES}"><rect x="{place}" y="{top + 4}" width="14" '
                        f'height="14"/></g><text class="label" x="{place + 20}" y="{top + 16}">{_text(name)}</text>')
            place += 32 + 9 * len(name)
    for index, label in enumerate(labels):
        y = top + legend_h + index * row
        body.append(f'<text class="tick" x="{left - 8}" y="{y + row / 2 + 5}" text-anchor="end">'
                    f'<title>{_text(label)}</title>{_text(_short(label, 24))}</text>')
        offset = 0.0
        for number, (name, values) in enumerate(series):
            value = values[index]
            if value <= 0:
                continue
            width = value * plot_w / peak
            what = f"{label}: {name} {value:,}{unit}" if name else f"{label}: {value:,}{unit}"
            body.append(f'<g class="series-{number % SERIES}"><rect x="{_number(left + offset)}" y="{y + 4}" '
                        f'width="{_number(max(width, 1.0))}" height="{row - 8}"><title>{_text(what)}</title>'
                        '</rect></g>')
            offset += width
        total = totals[index]
        body.append(f'<text class="label" x="{_number(left + offset + 6)}" y="{y + row / 2 + 5}">'
                    f'{_text(f"{total:,.1f}".removesuffix(".0") + unit)}</text>')
    return _frame(chart_id, title, description, height, body)
