"""Scheduled aggregation jobs (APScheduler 3, UTC).

Every process with the scheduler on schedules all of them; each period of each run takes
``pg_try_advisory_xact_lock`` on (job, period), so exactly one process does the work and the others skip
(see ``kernel.scheduler``). A run that finds nothing changed writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger

from aggregation import exports
from aggregation.service import PeriodResult, run_conversions, run_daily, run_hourly

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

    from kernel.db import Database

__all__ = ["JOB_IDS", "register_jobs"]

_log = logging.getLogger("corp_astro.aggregation.jobs")

# id -> (cron fields, what it runs). Minutes are staggered so the jobs do not start together.
JOB_IDS = ("aggregation.hourly", "aggregation.daily", "aggregation.conversions", "aggregation.export_cleanup")


def _summary(name: str, results: list[PeriodResult]) -> None:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    _log.info("aggregation job finished", extra={"job": name, "periods": counts})


def _wrap(name: str, db_of: Callable[[], Database], fn: Callable[[Database], Awaitable[Any]]) -> Any:
    async def job() -> None:
        result = await fn(db_of())
        if isinstance(result, list):
            _summary(name, result)

    job.__name__ = name
    return job


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """Add the hourly rollup (hh:05), daily rollup + active users (00:15), conversions (00:30) and the
    expiry of old export files (01:00), all UTC."""

    def db_of() -> Database:
        db: Database = app.state.db
        return db

    schedule: list[tuple[str, dict[str, Any], Callable[[Database], Awaitable[Any]]]] = [
        ("aggregation.hourly", {"minute": 5}, run_hourly),
        ("aggregation.daily", {"hour": 0, "minute": 15}, run_daily),
        ("aggregation.conversions", {"hour": 0, "minute": 30}, run_conversions),
        (
            "aggregation.export_cleanup",
            {"hour": 1, "minute": 0},
            lambda db: exports.expire_exports(db, app.state.settings.data_dir),
        ),
    ]
    for job_id, cron, fn in schedule:
        scheduler.add_job(
            _wrap(job_id, db_of, fn),
            CronTrigger(timezone="UTC", **cron),
            id=job_id,
            name=job_id,
            replace_existing=True,
        )
