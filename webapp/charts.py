"""Charts as SVG text, drawn on the server: a forest plot, a line chart with bands, stacked bars.

Pure functions: data in, an ``<svg>`` string out, every text escaped. The SVGs scale to their container
(``viewBox`` with ``width="100%"``), carry ``role="img"`` and a ``<title>`` for screen readers, and use
the page's CSS classes for colours so that they follow its contrast rules. No script, no font files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["Interval", "Series", "forest_plot", "line_chart", "nice_ticks", "stacked_bars"]

PALETTE = ("#1f5fbf", "#b3462f", "#2f7d32", "#7b3fa0", "#8a6d00", "#00707a", "#a0306a", "#4d4d4d")
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True, slots=True)
class Interval:
    """One row of a forest plot: an estimate and its CI, in the axis' unit."""

    label: str
    estimate: float
    low: float
    high: float
    tone: str = "neutral"  # good, bad or neutral: the row's colour class


@dataclass(frozen=True, slots=True)
class Series:
    """A line's values over the x positions (None: no value), with an optional band (low, high)."""

    name: str
    values: Sequence[float | None]
    band: Sequence[tuple[float, float] | None] = field(default_factory=tuple)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _tick_text(value: float) -> str:
    text = f"{value:,.6g}"
    return text.replace("-", "\u2212")


def _svg(width: int, height: int, title: str, body: list[str], css: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css}" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" {_FONT}>'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def forest_plot(rows: Sequence[Interval], unit: str, title: str, width: int = 640) -> str:
    """Horizontal CIs against a zero line, one row each, labelled on the left; the axis in ``unit``."""
    left, right, row_h, top = 150, 20, 30, 10
    height = top + row_h * max(len(rows), 1) + 34
    ends = [x for r in rows for x in (r.low, r.high, r.estimate) if math.isfinite(x)]
    lo, hi = min([0.0, *ends]), max([0.0, *ends])
    pad = (hi - lo) * 0.05 or 1.0
    ticks = nice_ticks(lo - pad, hi + pad)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    axis_y = top + row_h * max(len(rows), 1)
    body = [f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{axis_y}"/>' for t in ticks]
    body.append(f'<line class="zero" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top - 4}" y2="{axis_y}"/>')
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        body.append(
            f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" class="label">{escape(r.label)}</text>'
        )
        if not all(math.isfinite(v) for v in (r.low, r.high, r.estimate)):
            continue
        body.append(
            f'<g class="row {escape(r.tone)}"><line x1="{x(r.low):.1f}" x2="{x(r.high):.1f}" '
            f'y1="{cy:.1f}" y2="{cy:.1f}" stroke-width="3"/>'
            f'<circle cx="{x(r.estimate):.1f}" cy="{cy:.1f}" r="5"/></g>'
        )
    body.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{axis_y}" y2="{axis_y}"/>')
    body += [
        f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle" class="tick">{_tick_text(t)}</text>'
        for t in ticks
    ]
    body.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{axis_y + 31}" text-anchor="middle" '
        f'class="unit">{escape(unit)}</text>'
    )
    return _svg(width, height, title, body, "forest")


def _y_scale(values: Sequence[float], from_zero: bool = True) -> tuple[list[float], float, float]:
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = (min(finite, default=0.0), max(finite, default=1.0))
    ticks = nice_ticks(min(lo, 0.0) if from_zero else lo, hi if hi > lo else lo + 1)
    return ticks, ticks[0], ticks[-1]


def _y_grid(ticks: Sequence[float], y: Callable[[float], float], left: float, right: float) -> list[str]:
    """Horizontal grid lines with their values on the left."""
    return [
        f'<line class="grid" x1="{left}" x2="{right}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
        f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" class="tick">{_tick_text(t)}</text>'
        for t in ticks
    ]


def _x_labels(labels: Sequence[str], xs: Sequence[float], y: float, most: int = 8) -> list[str]:
    step = max(1, math.ceil(len(labels) / most))
    return [
        f'<text x="{xs[i]:.1f}" y="{y}" text-anchor="middle" class="tick">{escape(labels[i])}</text>'
        for i in range(0, len(labels), step)
    ]


def _legend(names: Sequence[str], y: float, left: float) -> list[str]:
    out = []
    x = left
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x:.0f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14:.0f}" y="{y}" class="legend">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    width: int = 640,
    height: int = 260,
    from_zero: bool = True,
) -> str:
    """Lines over the x labels (days), each with its band shaded when given; the y axis from zero
    unless ``from_zero`` is false (rates that move little)."""
    left, right, top, bottom = 64, 16, 26, height - 28
    values = [v for s in series for v in s.values if v is not None]
    values += [b for s in series for band in s.band if band is not None for b in band]
    ticks, lo, hi = _y_scale(values, from_zero)
    n = max(len(labels), 1)
    xs = [left + (i + 0.5) * (width - left - right) / n for i in range(n)]

    def y(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    body = _y_grid(ticks, y, left, width - right)
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        band = [(xs[j], b) for j, b in enumerate(s.band) if b is not None and j < n]
        if band:
            upper = " ".join(f"{bx:.1f},{y(b[1]):.1f}" for bx, b in band)
            lower = " ".join(f"{bx:.1f},{y(b[0]):.1f}" for bx, b in reversed(band))
            body.append(f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.15"/>')
        points = " ".join(
            f"{xs[j]:.1f},{y(v):.1f}" for j, v in enumerate(s.values) if v is not None and j < n
        )
        if points:
            body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    body += _x_labels(labels, xs, height - 10)
    body += _legend([s.name for s in series], 14, left)
    return _svg(width, height, title, body, "line")


def stacked_bars(
    labels: Sequence[str],
    stacks: Sequence[tuple[str, Sequence[float]]],
    title: str,
    width: int = 640,
    height: int = 260,
) -> str:
    """One bar per x label, its segments the stacks' values in order (a legend names them)."""
    left, right, top, bottom = 64, 16, 26, height - 28
    n = max(len(labels), 1)
    totals = [sum(values[i] for _, values in stacks if i < len(values)) for i in range(len(labels))]
    ticks, lo, hi = _y_scale([0.0, *totals])
    slot = (width - left - right) / n
    bar = max(slot * 0.75, 1.0)

    def y(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    body = _y_grid(ticks, y, left, width - right)
    for i in range(len(labels)):
        base = 0.0
        x0 = left + i * slot + (slot - bar) / 2
        for k, (_, values) in enumerate(stacks):
            v = values[i] if i < len(values) else 0.0
            if v <= 0:
                continue
            body.append(
                f'<rect x="{x0:.1f}" y="{y(base + v):.1f}" width="{bar:.1f}" '
                f'height="{y(base) - y(base + v):.1f}" fill="{PALETTE[k % len(PALETTE)]}"/>'
            )
            base += v
    body += _x_labels(labels, [left + (i + 0.5) * slot for i in range(n)], height - 10)
    body += _legend([name for name, _ in stacks], 14, left)
    return _svg(width, height, title, body, "bars")
