"""Scheduled work: conversions from ingested goal events (``ab_tests.goal_event``), docs/conversions.md,
and the per-unit metric state the results read (docs/experiments-metrics.md)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from experiments.service import convert_goal_events
from experiments.service.daily import daily_experiments, rollup_daily
from experiments.service.daily_cache import Budget
from experiments.service.unit_state_job import fold_unit_values
from kernel.errors import DomainError
from kernel.scheduler import job_lock, try_job_lock

if TYPE_CHECKING:
    from kernel.db import Database

__all__ = ["convert_goal_events", "fold_unit_values", "register_jobs"]

_log = logging.getLogger(__name__)

__all__ += ["DAILY_BUDGET_DAYS", "DAILY_BUDGET_SECONDS", "run_daily_results"]

# One run of the daily-results job recomputes at most this many days (all experiments together) and
# starts none after this long; what is left waits for the next run (or is computed by a request).
DAILY_BUDGET_DAYS = 31
DAILY_BUDGET_SECONDS = 120.0


async def run_daily_results(db: Database, budget: Budget | None = None) -> int:
    """Store the missing or stale closed days of every running experiment with metrics, one experiment
    per transaction, within ``budget`` (default: ``DAILY_BUDGET_DAYS`` / ``DAILY_BUDGET_SECONDS``); the
    number of days computed. One runner across processes (0 if another holds the job)."""
    budget = budget or Budget(DAILY_BUDGET_DAYS, DAILY_BUDGET_SECONDS)
    async with job_lock(db, "experiments.daily_results") as mine:
        if not mine:
            return 0
        async with db.transaction() as conn:
            names = await daily_experiments(conn)
        for name in names:
            if not budget.allows():
                break
            try:
                async with db.transaction() as conn:
                    await rollup_daily(conn, name, budget)
            except DomainError as exc:  # deleted or changed meanwhile: the next run sees it as it is
                _log.info("daily results skipped", extra={"experiment": name, "reason": exc.message})
    if budget.recomputed:
        _log.info("daily results computed", extra={"days": budget.recomputed})
    return budget.recomputed


async def _run_daily(app: Any) -> None:
    await run_daily_results(app.state.db)


async def _run(app: Any) -> None:
    async with app.state.db.transaction() as conn:
        if not await try_job_lock(conn, "experiments.goal_events"):
            return
        n = await convert_goal_events(conn)
    if n:
        _log.info("goal events converted assignments", extra={"converted": n})


async def _fold(app: Any) -> None:
    # READ COMMITTED (the default): fold_unit_values reads its horizon before the events.
    async with app.state.db.transaction() as conn:
        if not await try_job_lock(conn, "experiments.unit_values"):
            return
        n = await fold_unit_values(conn)
    if n:
        _log.info("unit metric state folded", extra={"units": n})


def register_jobs(scheduler: Any, app: Any) -> None:
    """Every minute, single-runner across processes; each run reads only what was ingested since the last."""
    scheduler.add_job(
        _run, "interval", minutes=1, args=[app], id="experiments.goal_events", replace_existing=True
    )
    scheduler.add_job(
        _fold, "interval", minutes=1, args=[app], id="experiments.unit_values", replace_existing=True
    )
    # The daily series' closed days (docs/experiments-metrics.md, "Over time"): every 10 minutes.
    scheduler.add_job(
        _run_daily, "interval", minutes=10, args=[app], id="experiments.daily_results", replace_existing=True
    )
