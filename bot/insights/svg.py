"""Charts drawn on the server as SVG: bars (stacked), horizontal bars and lines.

The SVG goes into the page as markup: no script, no ``style`` attribute or element
(the console's Content-Security-Policy allows neither), only presentation attributes.
Charts are 480 units wide and scale to their box, so that on a 360 px phone (a chart
about 310 px wide) the smallest, 15-unit text is still about 9.6 px high. Every chart
has a ``<title>`` and a ``<desc>`` with its figures for screen readers; the page also
shows them as a table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

WIDTH = 480
FONT = 16  # labels and legend
SMALL = 15  # axis ticks: the smallest text; ≥ 9 px on a 360 px phone
LEFT, RIGHT, TOP_GAP, BOTTOM = 50, 8, 8, 28
LEGEND_ROW = 22
MAX_LABEL_CHARS = 12  # a longer row label is cut (the full one is in the tooltip)
# Colour-blind-safe palette (Okabe–Ito), then greys.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
    "#D55E00", "#F0E442", "#000000", "#999999", "#666666",
)  # fmt: skip


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_max(value: float, whole: bool = True) -> float:
    """An axis maximum at or above ``value`` whose quarters are round (whole for counts)."""
    if value <= 0:
        return 4.0 if whole else 1.0
    quarter = value / 4
    magnitude = 10 ** math.floor(math.log10(quarter))
    for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        step = factor * magnitude
        if step >= quarter and (not whole or step == int(step)):
            return 4 * step
    return 4 * 10 * magnitude


def _text_width(text: str, size: float) -> float:
    """About how wide ``text`` is drawn: full-width characters a size, others 0.6."""
    return sum(size if ord(char) > 0x2E7F else size * 0.6 for char in text)


def _legend(names: Sequence[str], top: float) -> tuple[list[str], float]:
    """Legend entries in rows; returns the parts and the height used."""
    parts, x, y = [], float(LEFT), top
    for place, name in enumerate(names):
        width = 16 + _text_width(name, FONT) + 14
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, y = float(LEFT), y + LEGEND_ROW
        colour = PALETTE[place % len(PALETTE)]
        parts.append(
            f'<rect x="{_num(x)}" y="{_num(y + 3)}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{_num(x + 16)}" y="{_num(y + 14)}" font-size="{FONT}">{escape(name)}</text>'
        )
        x += width
    return parts, (y - top) + LEGEND_ROW + 4 if names else 0.0


def _frame(title: str, summary: str, height: float, body: Sequence[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_num(height)}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title><desc>{escape(summary)}</desc>" + "".join(body) + "</svg>"
    )


def _summary(categories: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> str:
    parts = []
    for name, values in series.items():
        shown = ", ".join(
            f"{category} {'-' if value is None else _num(value)}"
            for category, value in zip(categories, values, strict=True)
        )
        parts.append(f"{name}: {shown}")
    return "。".join(parts)


def _axis(top: float, plot_h: float, maximum: float, percent: bool) -> list[str]:
    parts = []
    for step in range(5):
        value = maximum * step / 4
        y = top + plot_h - plot_h * step / 4
        label = f"{_num(value * 100)}%" if percent else _num(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{_num(y)}" x2="{WIDTH - RIGHT}" y2="{_num(y)}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{LEFT - 4}" y="{_num(y + 5)}" font-size="{SMALL}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    return parts


def _ticks(categories: Sequence[str], x_of: list[float], bottom: float) -> list[str]:
    every = max(1, -(-len(categories) // 7))  # at most 7 labels
    return [
        f'<text x="{_num(x_of[place])}" y="{_num(bottom + 19)}" font-size="{SMALL}" '
        f'text-anchor="middle">{escape(category)}</text>'
        for place, category in enumerate(categories)
        if place % every == 0
    ]


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    height: float = 220,
) -> Markup:
    """Stacked vertical bars: one bar per category, one colour per series."""
    names = list(series)
    legend, legend_h = _legend(names if len(names) > 1 else [], TOP_GAP)
    top = TOP_GAP + legend_h + 6
    plot_h = height - top - BOTTOM
    totals = [sum(values[place] for values in series.values()) for place in range(len(categories))]
    maximum = _nice_max(max(totals, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / max(1, len(categories))
    bar = max(1.0, slot * 0.75)
    x_of = [LEFT + slot * place + slot / 2 for place in range(len(categories))]
    parts = [*legend, *_axis(top, plot_h, maximum, False)]
    for place in range(len(categories)):
        base = top + plot_h
        for index, name in enumerate(names):
            value = series[name][place]
            if value <= 0:
                continue
            h = plot_h * value / maximum
            base -= h
            parts.append(
                f'<rect x="{_num(x_of[place] - bar / 2)}" y="{_num(base)}" width="{_num(bar)}" '
                f'height="{_num(h)}" fill="{PALETTE[index % len(PALETTE)]}">'
                f"<title>{escape(categories[place])} {escape(name)} {value}</title></rect>"
            )
    parts += _ticks(categories, x_of, top + plot_h)
    return _frame(title, _summary(categories, series), height, parts)


def line_chart(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    height: float = 220,
) -> Markup:
    """Lines of shares (0 to 1, shown as percent); a missing value breaks the line."""
    names = list(series)
    legend, legend_h = _legend(names, TOP_GAP)
    top = TOP_GAP + legend_h + 6
    plot_h = height - top - BOTTOM
    values = [value for line in series.values() for value in line if value is not None]
    maximum = min(1.0, _nice_max(max(values, default=0.0), whole=False)) if values else 1.0
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / max(1, len(categories))
    x_of = [LEFT + slot * place + slot / 2 for place in range(len(categories))]
    parts = [*legend, *_axis(top, plot_h, maximum, True)]
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        points = []
        for place, value in enumerate(series[name]):
            if value is None:
                continue
            y = top + plot_h - plot_h * min(value, maximum) / maximum
            points.append((x_of[place], y, place, value))
        if len(points) > 1:
            path = " ".join(f"{_num(x)},{_num(y)}" for x, y, _, _ in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
            )
        for x, y, place, value in points:
            parts.append(
                f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.5" fill="{colour}">'
                f"<title>{escape(categories[place])} {escape(name)} {_num(value * 100)}%</title>"
                "</circle>"
            )
    parts += _ticks(categories, x_of, top + plot_h)
    return _frame(title, _summary(categories, series), height, parts)


def hbar_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
) -> Markup:
    """Stacked horizontal bars, one row per label (for counts of few categories)."""
    names = list(series)
    legend, legend_h = _legend(names if len(names) > 1 else [], TOP_GAP)
    longest = max((len(label) for label in labels), default=1)
    label_w = float(min(MAX_LABEL_CHARS, longest) * FONT + 8)
    row = 26
    top = TOP_GAP + legend_h + 4
    height = top + row * len(labels) + 8
    totals = [sum(values[place] for values in series.values()) for place in range(len(labels))]
    maximum = max(max(totals, default=0), 1)
    plot_w = WIDTH - label_w - RIGHT - 44
    parts = list(legend)
    for place, label in enumerate(labels):
        y = top + row * place
        shown = label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
        parts.append(
            f'<text x="{_num(label_w - 6)}" y="{_num(y + 17)}" font-size="{FONT}" '
            f'text-anchor="end"><title>{escape(label)}</title>{escape(shown)}</text>'
        )
        x = label_w
        for index, name in enumerate(names):
            value = series[name][place]
            if value <= 0:
                continue
            w = plot_w * value / maximum
            parts.append(
                f'<rect x="{_num(x)}" y="{_num(y + 3)}" width="{_num(max(w, 1.0))}" height="18" '
                f'fill="{PALETTE[index % len(PALETTE)]}">'
                f"<title>{escape(label)} {escape(name)} {value}</title></rect>"
            )
            x += w
        parts.append(
            f'<text x="{_num(x + 4)}" y="{_num(y + 17)}" font-size="{FONT}">{totals[place]}</text>'
        )
    return _frame(title, _summary(labels, series), height, parts)
