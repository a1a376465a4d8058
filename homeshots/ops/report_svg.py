"""Small dependency-free SVG charts for the report: axes, ticks, lines, bars, labels and a legend.

The page must open offline and never run third-party code, so the plots are plain inline SVG built
here rather than by a JavaScript library. Every piece of text (titles, series and category names,
which may come from listing data) goes through ``esc``; the result is ``Markup`` so Jinja2's
autoescape inserts it as is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
"""Tableau 10: distinguishable colours, also for most colour-blind readers."""

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 170, 34, 48
"""Plot-area margins: room for y tick labels, the legend, the title and the x label."""
MAX_POINTS = 600
"""Points drawn per line; longer series are thinned (a 1M-property run has ~1000 samples)."""
LEGEND_CHARS = 24


@dataclass(frozen=True, slots=True)
class Series:
    """One named line (x, y points) or one named bar series (a value per category)."""

    name: str
    values: Sequence[tuple[float, float]] | Sequence[float]


def esc(text: object) -> str:
    """Text for SVG content and attributes: ``<``, ``>``, ``&`` and both quotes escaped."""
    return html.escape(str(text), quote=True)


def fmt(value: float) -> str:
    """A short tick label: 1200 -> 1.2k, 3.0 -> 3, 0.25 -> 0.25."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _frame(title: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="8" y="20" font-size="14" font-weight="600" fill="#222">{esc(title)}</text>',
    ]


def _axes(
    parts: list[str], y_ticks: list[float], x_label: str, y_label: str, width: int, height: int
) -> tuple[float, float, float, float]:
    """Horizontal grid lines with y tick labels and both axis labels; returns the plot area (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = LEFT, TOP, width - RIGHT, height - BOTTOM
    lo, hi = y_ticks[0], y_ticks[-1]
    for tick in y_ticks:
        y = y1 - (tick - lo) / (hi - lo) * (y1 - y0)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        parts.append(
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{esc(fmt(tick))}</text>'
        )
    parts.append(f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#888"/>')
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#888"/>')
    parts.append(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{height - 8}" font-size="12" text-anchor="middle" fill="#333">'
        f"{esc(x_label)}</text>"
    )
    cy = (y0 + y1) / 2
    parts.append(
        f'<text x="14" y="{cy:.1f}" font-size="12" text-anchor="middle" fill="#333" '
        f'transform="rotate(-90 14 {cy:.1f})">{esc(y_label)}</text>'
    )
    return x0, y0, x1, y1


def _legend(parts: list[str], names: Sequence[str], width: int) -> None:
    x = width - RIGHT + 14
    for i, name in enumerate(names):
        y = TOP + 4 + i * 18
        label = name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "…"
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 18}" y="{y + 10}" font-size="12" fill="#333">{esc(label)}</text>')


def _empty(parts: list[str], width: int, height: int) -> Markup:
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" font-size="13" text-anchor="middle" fill="#777">no data</text></svg>'
    )
    return Markup("".join(parts))


def _thin(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    stride = math.ceil(len(points) / MAX_POINTS)
    return [*points[::stride], points[-1]]


def line_chart(
    title: str, series: Sequence[Series], *, x_label: str, y_label: str, width: int = WIDTH, height: int = HEIGHT
) -> Markup:
    """Lines of (x, y) points on shared axes, with a legend; y starts at 0 (rates and counts)."""
    parts = _frame(title, width, height)
    lines = [(s.name, _thin(s.values)) for s in series if s.values]  # type: ignore[arg-type]
    if not lines:
        return _empty(parts, width, height)
    xs = [x for _, pts in lines for x, _ in pts]
    ys = [y for _, pts in lines for _, y in pts]
    y_ticks = nice_ticks(0.0, max(ys) if max(ys) > 0 else 1.0)
    x_ticks = nice_ticks(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1)
    x0, y0, x1, y1 = _axes(parts, y_ticks, x_label, y_label, width, height)
    xlo, xhi, yhi = x_ticks[0], x_ticks[-1], y_ticks[-1]

    def px(x: float) -> float:
        return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0)

    def py(y: float) -> float:
        return y1 - y / yhi * (y1 - y0)

    for tick in x_ticks:
        parts.append(f'<line x1="{px(tick):.1f}" y1="{y1}" x2="{px(tick):.1f}" y2="{y1 + 4}" stroke="#888"/>')
        parts.append(
            f'<text x="{px(tick):.1f}" y="{y1 + 16}" font-size="11" text-anchor="middle" fill="#555">'
            f"{esc(fmt(tick))}</text>"
        )
    for i, (_, pts) in enumerate(lines):
        colour = PALETTE[i % len(PALETTE)]
        if len(pts) == 1:
            parts.append(f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" fill="{colour}"/>')
            continue
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{coords}"/>')
    _legend(parts, [name for name, _ in lines], width)
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    width: int = WIDTH,
    height: int = HEIGHT,
    legend: bool = True,
) -> Markup:
    """Grouped bars: one group per category, one bar per series; labels thinned when they would overlap."""
    parts = _frame(title, width, height)
    values = [[float(v) for v in s.values] for s in series]  # type: ignore[arg-type]
    if not categories or not values or not any(v for row in values for v in row):
        return _empty(parts, width, height)
    y_ticks = nice_ticks(0.0, max(v for row in values for v in row))
    x0, y0, x1, y1 = _axes(parts, y_ticks, x_label, y_label, width, height)
    yhi = y_ticks[-1]
    group = (x1 - x0) / len(categories)
    bar = group * 0.8 / len(values)
    label_every = max(1, math.ceil(len(categories) * 34 / (x1 - x0)))
    for c, category in enumerate(categories):
        left = x0 + c * group + group * 0.1
        for s, row in enumerate(values):
            h = row[c] / yhi * (y1 - y0)
            parts.append(
                f'<rect x="{left + s * bar:.1f}" y="{y1 - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}"><title>{esc(category)} {esc(series[s].name)}: '
                f"{esc(fmt(row[c]))}</title></rect>"
            )
        if c % label_every == 0:
            parts.append(
                f'<text x="{x0 + (c + 0.5) * group:.1f}" y="{y1 + 16}" font-size="11" text-anchor="middle" '
                f'fill="#555">{esc(category)}</text>'
            )
    if legend:
        _legend(parts, [s.name for s in series], width)
    parts.append("</svg>")
    return Markup("".join(parts))
