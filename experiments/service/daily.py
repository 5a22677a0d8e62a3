"""Results over time: each metric's cumulative units, mean and confidence interval per variant per day.

Day d's point is the results as they stood at the end of d (UTC): the units exposed by then and their
events until then, with the metric's window. The number of days is bounded (``MAX_DAYS``, the most
recent ones).

Closed days come from ``experiment_daily_results`` (``experiments.service.daily_cache``): each is computed
once by the scheduled job (``rollup_daily``, job ``experiments.daily_results``) or by the first request
that needs it, and again only when late data arrives for it or the analysis changes. Today's point is
the current results (``GET /results``'s rows, from the per-unit state when it is current). A missing
or stale closed day is one run of the results statement as of the day's end, so the answer is the one
recomputing every day would give (``cached=False`` does exactly that, today included), but for events
dated after today, which today's point counts.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import asyncpg
from scipy.stats import t as student_t

from experiments import daily_repository, metric_sql
from experiments.definitions import Experiment
from experiments.metric_definitions import with_goal
from experiments.metric_schemas import DailyMetric, DailyPoint, DailyResultsOut, DailyVariant, MetricResult
from experiments.service import daily_cache
from experiments.service.daily_cache import Budget, day_end
from experiments.service.management import get_experiment
from experiments.service.metric_results import Plan
from experiments.service.metrics import analysis_of
from kernel.auth import utcnow
from kernel.errors import ValidationError

__all__ = ["MAX_DAYS", "daily_experiments", "daily_results", "rollup_daily"]

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


def _days(exp: Experiment, first: dt.datetime, today: dt.date) -> list[dt.date]:
    last = min(today, exp.end_date) if exp.end_date else today
    start = max(first.date(), last - dt.timedelta(days=MAX_DAYS - 1))
    return [start + dt.timedelta(days=i) for i in range((last - start).days + 1)]


async def _setup(
    conn: asyncpg.Connection, name: str
) -> tuple[Experiment, Plan, metric_sql.UnitSource, dt.datetime | None]:
    exp = await get_experiment(conn, name)
    plan = Plan.of(with_goal(await analysis_of(conn, exp.test_id), exp.goal_event))
    units = metric_sql.unit_source(exp.unit)
    first = await metric_sql.fetch_earliest(conn, units, exp.test_id) if plan.linked else None
    return exp, plan, units, first


async def _point(
    conn: asyncpg.Connection,
    exp: Experiment,
    plan: Plan,
    units: metric_sql.UnitSource,
    day: dt.date,
    live: bool,
) -> list[dict[str, Any]]:
    """A day computed now: as of its end; today's (``live``) is the results as they stand, which the
    per-unit state answers when current (the same rows but for events dated after today)."""
    return await plan.fetch(conn, exp, units, until=None if live else day_end(day))


async def daily_results(
    conn: asyncpg.Connection, name: str, *, alpha: float = 0.05, cached: bool = True
) -> DailyResultsOut:
    """Cumulative per-day values of every declared metric (the most recent ``MAX_DAYS`` days). Closed
    days from the cache (computing and storing those missing or stale), today live; ``cached=False``:
    every day live, nothing read or written."""
    if not 1e-10 <= alpha < 1:
        raise ValidationError(
            "Require 1e-10 <= alpha < 1.", details=[{"field": "query.alpha", "message": "out of range"}]
        )
    exp, plan, units, first = await _setup(conn, name)
    if not plan.linked or first is None:
        note = "No metrics nor goal_event are declared." if not plan.linked else "No units are assigned yet."
        return DailyResultsOut(exp.name, alpha, [], note)
    today = utcnow().date()
    days = _days(exp, first, today)
    closed = [d for d in days if d < today]
    stored: dict[dt.date, list[dict[str, Any]]] = {}
    if cached:
        write = await daily_cache.lock(conn, exp.test_id)
        stored = await daily_cache.refresh(conn, exp, plan, units, closed, write=write)
    series: dict[str, DailyMetric] = {}
    for day in days:
        live = cached and day == today
        rows = stored[day] if day in stored else await _point(conn, exp, plan, units, day, live=live)
        for result, sds in zip(plan.results(exp, rows, alpha), plan.stddevs(exp, rows), strict=True):
            entry = series.setdefault(result.metric, DailyMetric(result.metric, result.role, []))
            entry.days.append(DailyPoint(day, _variants(result, sds, alpha)))
    return DailyResultsOut(exp.name, alpha, list(series.values()))


async def daily_experiments(conn: asyncpg.Connection) -> list[str]:
    """The experiments the daily job keeps: running, with declared metrics or a goal event."""
    return await daily_repository.running_with_metrics(conn)


async def rollup_daily(conn: asyncpg.Connection, name: str, budget: Budget) -> int | None:
    """Store experiment ``name``'s closed days that are missing or stale (within ``budget``) and drop
    the days that left the window; the number recomputed, None if another transaction holds the test."""
    exp, plan, units, first = await _setup(conn, name)
    if not plan.linked or first is None:
        return 0
    if not await daily_cache.lock(conn, exp.test_id):
        return None
    today = utcnow().date()
    days = _days(exp, first, today)
    await daily_repository.delete_before(conn, exp.test_id, days[0])
    before = budget.recomputed
    await daily_cache.refresh(
        conn, exp, plan, units, [d for d in days if d < today], write=True, budget=budget
    )
    return budget.recomputed - before
