"""What the experiment pages show, computed from the API's results (``experiments.ResultsOut``).

Pure: no I/O. Every number is formatted here (``webapp.fmt``) so that the templates only place text,
and the same figures the API returns are the ones on the page.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from markupsafe import Markup

from experiments import ExperimentOut, ResultsOut, Schedule, guardrail_verdict, verdict
from webapp import charts, fmt

__all__ = [
    "ExperimentRow",
    "chip_of",
    "comparison_cells",
    "cumulative_chart",
    "experiment_page",
    "experiment_row",
    "variant_cells",
]

_RATE_KINDS = {"binomial", "retention"}


@dataclass(frozen=True, slots=True)
class Chip:
    kind: str  # winning, losing, inconclusive, srm, no-data
    text: str


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    """One line of the experiments list."""

    name: str
    status: str
    start_date: str
    end_date: str | None
    days: str
    unit: str
    units: str
    split: str
    primary_metric: str
    chip: Chip


def _tone(lift: float | None, significant: bool, direction: str) -> str:
    if lift is None or not significant:
        return "neutral"
    good = lift > 0 if direction != "decrease" else lift < 0
    return "good" if good else "bad"


def chip_of(res: ResultsOut) -> Chip:
    """SRM first; then the primary metric: winning when a treatment beats the control significantly in
    the metric's direction, losing when one is significantly worse, else inconclusive."""
    if res.srm.detected:
        return Chip("srm", "SRM")
    primary = next((m for m in res.metrics if m.role == "primary"), None)
    direction = primary.direction if primary else "increase"
    comparisons: list[Any] = list(primary.comparisons if primary else res.comparisons)
    tones = {_tone(c.absolute_lift, c.significant, direction) for c in comparisons}
    if "good" in tones:
        return Chip("winning", "Winning")
    if "bad" in tones:
        return Chip("losing", "Losing")
    if not any(c.p_value is not None for c in comparisons):
        return Chip("no-data", "Not enough data")
    return Chip("inconclusive", "Inconclusive")


def _days(exp: ExperimentOut, today: dt.date) -> str:
    if today < exp.start_date:
        return "not started"
    last = min(today, exp.end_date) if exp.end_date else today
    n = (last - exp.start_date).days + 1
    return f"{n:,} day" + ("" if n == 1 else "s")


def _split(exp: ExperimentOut) -> str:
    return " / ".join(f"{v.traffic_percentage:g}" for v in exp.variants) + " %"


def experiment_row(exp: ExperimentOut, res: ResultsOut | None, today: dt.date) -> ExperimentRow:
    """The list's line for an experiment (``res`` None: no results could be computed)."""
    return ExperimentRow(
        name=exp.name,
        status=exp.status,
        start_date=exp.start_date.isoformat(),
        end_date=exp.end_date.isoformat() if exp.end_date else None,
        days=_days(exp, today),
        unit=exp.unit,
        units=fmt.count(sum(v.users for v in res.variants)) if res else fmt.DASH,
        split=_split(exp),
        primary_metric=exp.primary_metric or exp.goal_event or "conversion",
        chip=chip_of(res) if res else Chip("no-data", "No results"),
    )


@dataclass(slots=True)
class MetricView:
    name: str
    role: str
    kind: str
    direction: str
    is_rate: bool
    lift_unit: str
    variants: list[dict[str, str]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    forest: Markup = field(default_factory=Markup)
    verdicts: list[str] = field(default_factory=list)
    note: str | None = None


def variant_cells(m: Any, alpha: float) -> list[dict[str, str]]:
    """Each variant's units and value; a rate also gets its Wald CI (the API gives no per-arm CI)."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    out = []
    for v in m.variants:
        cell = {"name": v.name, "units": fmt.count(v.units), "value": fmt.DASH, "ci": fmt.DASH}
        if v.mean is not None and m.kind in _RATE_KINDS:
            cell["value"] = fmt.percent(v.mean, 2)
            if v.units:
                half = z * math.sqrt(max(v.mean * (1 - v.mean), 0.0) / v.units)
                lo, hi = max(v.mean - half, 0.0), min(v.mean + half, 1.0)
                cell["ci"] = f"[{fmt.decimal(lo * 100, 2)}, {fmt.decimal(hi * 100, 2)}] %"
        elif v.mean is not None:
            cell["value"] = fmt.decimal(v.mean, fmt.places_for(v.mean) + 1)
        out.append(cell)
    return out


def comparison_cells(c: Any, is_rate: bool, direction: str) -> dict[str, Any]:
    lift = fmt.pp(c.absolute_lift) if is_rate else fmt.signed(c.absolute_lift, 3)
    ci = fmt.interval(c.absolute_ci, 100.0 if is_rate else 1.0)
    chance = c.chance_to_beat_control  # the API's: for a "decrease" metric, the chance to be below
    return {
        "variant": c.variant,
        "lift": lift,
        "lift_ci": ci,
        "relative": fmt.DASH if c.relative_lift is None else f"{fmt.signed(c.relative_lift * 100, 1)} %",
        "relative_ci": fmt.interval(c.relative_ci, 100.0, 1),
        "p": fmt.p_value(c.p_value),
        "adjusted_p": fmt.p_value(c.adjusted_p_value),
        "chance": fmt.chance(chance),
        "sequential_p": fmt.p_value(c.sequential_p_value),
        "significant": c.significant,
        "tone": _tone(c.absolute_lift, c.significant, direction),
        "harm": bool(getattr(c, "harm", None)),
        "note": c.note,
    }


def _forest(m: MetricView, comparisons: list[Any], control: str) -> Markup:
    """A rate's absolute lift in pp; any other metric's relative lift in % (as the CLI's verdicts)."""
    rows = []
    for c in comparisons:
        lift, ci = (c.absolute_lift, c.absolute_ci) if m.is_rate else (c.relative_lift, c.relative_ci)
        if lift is not None and ci is not None:
            tone = _tone(c.absolute_lift, c.significant, m.direction)
            rows.append(
                charts.Interval(f"{c.variant} vs {control}", lift * 100, ci[0] * 100, ci[1] * 100, tone)
            )
    if not rows:
        return Markup("")
    title = f"Lift of {m.name} against {control}, with its confidence interval ({m.lift_unit})"
    return Markup(charts.forest_plot(rows, m.lift_unit, title))  # noqa: S704 (charts escape every text)


def _verdicts(res: ResultsOut, m: Any) -> list[str]:
    """The experiments CLI's verdict lines (``experiments.verdict``, ``guardrail_verdict``) for a metric."""
    label = {"holm": "Holm", "bh": "BH"}.get(res.correction, res.correction)
    rate, increase, srm = m.kind in _RATE_KINDS, m.direction == "increase", res.srm.detected
    if m.role == "guardrail":
        return [guardrail_verdict(c, res.control, srm, m.metric, rate) for c in m.comparisons]
    return [
        verdict(c, res.control, srm, m.metric, rate=rate, increase=increase, correction=label)
        for c in m.comparisons
    ]


def _metrics(res: ResultsOut) -> list[MetricView]:
    out = []
    for m in res.metrics:
        is_rate = m.kind in _RATE_KINDS
        view = MetricView(
            name=m.metric,
            role=m.role,
            kind=m.kind,
            direction=m.direction,
            is_rate=is_rate,
            lift_unit="percentage points" if is_rate else "relative lift, %",
            variants=variant_cells(m, res.alpha),
            comparisons=[comparison_cells(c, is_rate, m.direction) for c in m.comparisons],
            note=m.note,
        )
        view.forest = _forest(view, list(m.comparisons), res.control)
        view.verdicts = _verdicts(res, m)
        out.append(view)
    return out


def _srm(res: ResultsOut) -> dict[str, Any]:
    total = sum(v.users for v in res.variants)
    rows = [
        {
            "name": v.name,
            "users": fmt.count(v.users),
            "observed": fmt.percent(v.users / total, 2) if total else fmt.DASH,
            "expected": fmt.percent(v.expected_share, 2),
        }
        for v in res.variants
    ]
    p = fmt.p_value(res.srm.p_value)
    p_text = f"p {p[0]} {p[1:]}" if p.startswith("<") else f"p = {p}"
    return {"detected": res.srm.detected, "p": p, "p_text": p_text, "rows": rows}


def _power(res: ResultsOut) -> dict[str, str | None]:
    p = res.power
    total = sum(v.users for v in res.variants)
    still = None if p.users_needed_for_mde is None else max(p.users_needed_for_mde - total, 0)
    return {
        "power": fmt.percent(p.power, 0),
        "target": fmt.percent(p.target_mde, 1),
        "mde_now": fmt.percent(p.mde_at_current_n, 1),
        "mde_abs": fmt.pp(p.mde_absolute_at_current_n),
        "needed": fmt.count(p.users_needed_for_mde),
        "still_needed": fmt.count(still),
        "note": p.note,
    }


def experiment_page(exp: ExperimentOut, res: ResultsOut, today: dt.date) -> dict[str, Any]:
    """Everything the experiment page shows, as text and SVG."""
    schedule = Schedule(exp.start_date, exp.end_date, today)
    metrics = _metrics(res)
    return {
        "exp": exp,
        "row": experiment_row(exp, res, today),
        "schedule": schedule.line(),
        "confidence": fmt.percent(1 - res.alpha, 0),
        "control": res.control,
        "phase": res.phase,
        "correction": res.correction,
        "metrics": metrics,
        "guardrails_harmed": [
            (m.name, c["variant"])
            for m in metrics
            if m.role == "guardrail"
            for c in m.comparisons
            if c["harm"]
        ],
        "verdicts": [line for m in metrics if m.role == "primary" for line in m.verdicts]
        or [verdict(c, res.control, res.srm.detected) for c in res.comparisons],
        "srm": _srm(res),
        "power": _power(res),
        "computed_at": dt.datetime.now(dt.UTC).replace(microsecond=0),
    }


def cumulative_chart(exp: ExperimentOut, daily: list[Any], alpha: float = 0.05) -> Markup:
    """Each variant's cumulative conversion rate (%) over the rolled-up days, with its Wald band.

    ``daily``: rows ``{variant_id, day, assigned, converted}`` (aggregation's experiment_daily), each
    day's new assignments and conversions; the running sums give the rate as of the end of each day.
    Empty when no day has been rolled up yet.
    """
    days = sorted({r["day"] for r in daily})
    if not days:
        return Markup()
    z = NormalDist().inv_cdf(1 - alpha / 2)
    index = {d: i for i, d in enumerate(days)}
    series = []
    for v in exp.variants:
        assigned, converted = [0] * len(days), [0] * len(days)
        for r in daily:
            if r["variant_id"] == v.variant_id:
                assigned[index[r["day"]]] += r["assigned"]
                converted[index[r["day"]]] += r["converted"]
        values: list[float | None] = []
        band: list[tuple[float, float] | None] = []
        n = c = 0
        for a, k in zip(assigned, converted, strict=True):
            n, c = n + a, c + k
            if n == 0:
                values.append(None)
                band.append(None)
                continue
            rate = min(c / n, 1.0)
            half = z * math.sqrt(rate * (1 - rate) / n)
            values.append(rate * 100)
            band.append((max(rate - half, 0.0) * 100, min(rate + half, 1.0) * 100))
        series.append(charts.Series(v.name, values, band))
    labels = [d.strftime("%m-%d") for d in days]
    title = "Cumulative conversion rate (%) by variant, with its confidence band"
    return Markup(charts.line_chart(labels, series, title, from_zero=False))  # noqa: S704 (charts escape every text)
