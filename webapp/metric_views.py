"""The experiment page's per-metric parts: the cumulative chart per declared metric (from the experiments
domain's daily results) and the exploratory table of one dimension's slices (its dimension results)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from experiments import DIMENSIONS
from webapp import charts, views

__all__ = ["DIMENSION_CHOICES", "daily_charts", "dimension_view"]

# The dimension picker's options: the experiments domain's fixed dimensions (a trait:<name> is accepted in
# the URL's ``dimension`` too).
DIMENSION_CHOICES = tuple(DIMENSIONS)
_RATE_KINDS = {"binomial", "retention"}


def daily_charts(daily: Any, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """One line chart per metric of ``experiments.daily_results``: each variant's cumulative mean (a rate
    in %) as of the end of each UTC day, with its CI band. ``kinds``: metric name -> kind."""
    out = []
    for m in daily.metrics:
        if not m.days:
            continue
        scale = 100.0 if kinds.get(m.metric) in _RATE_KINDS else 1.0
        names = [v.name for v in m.days[-1].variants]
        series = []
        for name in names:
            values: list[float | None] = []
            band: list[tuple[float, float] | None] = []
            for point in m.days:
                v = next((x for x in point.variants if x.name == name), None)
                values.append(None if v is None or v.mean is None else v.mean * scale)
                band.append(None if v is None or v.ci is None else (v.ci[0] * scale, v.ci[1] * scale))
            series.append(charts.Series(name, values, band))
        labels = [p.day.strftime("%m-%d") for p in m.days]
        unit = " (%)" if scale == 100.0 else " per unit"
        title = f"Cumulative {m.metric}{unit} by variant, with its confidence band"
        svg = charts.line_chart(labels, series, title, from_zero=False)
        out.append({"name": m.metric, "role": m.role, "chart": Markup(svg)})  # noqa: S704 (charts escape every text)
    return out


def dimension_view(found: Any, alpha: float) -> dict[str, Any]:
    """``experiments.dimension_results`` as table cells: per slice, per metric, variants and comparisons."""
    slices = []
    for s in found.slices:
        metrics = []
        for m in s.metrics:
            is_rate = m.kind in _RATE_KINDS
            metrics.append(
                {
                    "name": m.metric,
                    "is_rate": is_rate,
                    "variants": views.variant_cells(m, alpha),
                    "comparisons": [views.comparison_cells(c, is_rate, m.direction) for c in m.comparisons],
                }
            )
        slices.append({"value": s.value, "units": s.units, "metrics": metrics})
    return {"dimension": found.dimension, "top": found.top, "slices": slices, "note": found.note}
