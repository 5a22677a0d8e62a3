"""Results over time: each metric's cumulative units, mean and confidence interval per variant per day.

Day d's point is the results as they stood at the end of d (UTC): the units exposed by then and their
events until then, with the metric's window. Each day is one run of the results statement; the number of
days is bounded (``MAX_DAYS``, the most recent ones). Computed on request: no rollup keeps it incremental.
"""

from __future__ import annotations

import datetime as dt
import math

import asyncpg
from scipy.stats import t as student_t

from experiments import metric_sql
from experiments.definitions import Experiment
from experiments.metric_schemas import DailyMetric, DailyPoint, DailyResultsOut, DailyVariant, MetricResult
from experiments.service.management import get_experiment
from experiments.service.metric_results import Plan
from experiments.service.metrics import analysis_of
from kernel.auth import utcnow
from kernel.errors import ValidationError

__all__ = ["MAX_DAYS", "daily_results"]

MAX_DAYS = 90


def _ci(mean: float | None, sd: float | None, n: int, alpha: float) -> tuple[float, float] | None:
    if mean is None or sd is None or n < 2:
        return None
    half = float(student_t.ppf(1.0 - alpha / 2.0, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half) if math.isfinite(half) else None


def _variants(result: MetricResult, sds: dict[str, float | None], alpha: float) -> list[DailyVariant]:
    return [
        DailyVariant(v.name, v.units, v.mean, _ci(v.mean, sds.get(v.name), v.units, alpha))
        for v in result.variants
    ]


def _days(exp: Experiment, first: dt.datetime) -> list[dt.date]:
    today = utcnow().date()
    last = min(today, exp.end_date) if exp.end_date else today
    start = max(first.date(), last - dt.timedelta(days=MAX_DAYS - 1))
    return [start + dt.timedelta(days=i) for i in range((last - start).days + 1)]


async def daily_results(conn: asyncpg.Connection, name: str, *, alpha: float = 0.05) -> DailyResultsOut:
    """Cumulative per-day values of every declared metric (the most recent ``MAX_DAYS`` days)."""
    if not 1e-10 <= alpha < 1:
        raise ValidationError(
            "Require 1e-10 <= alpha < 1.", details=[{"field": "query.alpha", "message": "out of range"}]
        )
    exp = await get_experiment(conn, name)
    plan = Plan.of(await analysis_of(conn, exp.test_id))
    units = metric_sql.unit_source(exp.unit)
    first = await metric_sql.fetch_earliest(conn, units, exp.test_id)
    if not plan.linked or first is None:
        note = "No metrics are declared." if not plan.linked else "No units are assigned yet."
        return DailyResultsOut(exp.name, alpha, [], note)
    series: dict[str, DailyMetric] = {}
    for day in _days(exp, first):
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        rows = await plan.fetch(conn, exp, units, until=end)
        for result, sds in zip(plan.results(exp, rows, alpha), plan.stddevs(exp, rows), strict=True):
            entry = series.setdefault(result.metric, DailyMetric(result.metric, result.role, []))
            entry.days.append(DailyPoint(day, _variants(result, sds, alpha)))
    return DailyResultsOut(exp.name, alpha, list(series.values()))
