"""The aggregation boundary: the rollup jobs, the API exports' background work, and their schedule.

Every transaction of the domain's jobs opens here, one per step: a period's rollup (its ledger row
included), a failed period's ledger row, an export's claim, each heartbeat, its outcome. The service
modules do each step on the connection given to them.

Scheduled with APScheduler 3 (UTC). Every process with the scheduler on schedules all of them; each period
of each run takes ``pg_try_advisory_xact_lock`` on (job, period), so exactly one process does the work and
the others skip (see ``kernel.scheduler``). A run that finds nothing changed writes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger

from aggregation import exports, memory, periods
from aggregation import repository as repo
from aggregation.periods import PeriodResult
from aggregation.repository import HOUR, day_start
from kernel import events
from kernel.auth import utcnow
from kernel.scheduler import job_lock

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

    from aggregation.service import Runner, Work
    from kernel.db import Database

__all__ = [
    "JOB_IDS",
    "PeriodResult",
    "aggregate_range",
    "expire_exports",
    "register_jobs",
    "rollup_day",
    "run_conversions",
    "run_daily",
    "run_export",
    "run_hourly",
]

_log = logging.getLogger("corp_astro.aggregation.jobs")

# id -> (cron fields, what it runs). Minutes are staggered so the jobs do not start together.
JOB_IDS = ("aggregation.hourly", "aggregation.daily", "aggregation.conversions", "aggregation.export_cleanup")


# --- Rollups --------------------------------------------------------------------------------------


def _runner(db: Database, *, force: bool = False) -> Runner:
    """A rollup runner reading ``db``. Polars is loaded here, at the first job that computes, never when
    the domain is imported: its allocator reads ``_RJEM_MALLOC_CONF`` once, when it is loaded."""
    memory.configure_allocators()
    from aggregation.service import Runner

    return Runner(db.url, force=force)


async def _run_period(
    db: Database, runner: Runner, job: str, period: dt.datetime, work: Work, *, wait: bool = False
) -> PeriodResult:
    """One period in one transaction; a failure is recorded in its own transaction and returned."""
    started = utcnow()
    try:
        async with db.transaction() as conn:
            return await runner.run_in(conn, job, period, work, started=started, wait=wait)
    except Exception as exc:
        runner.forget()
        _log.exception("aggregation period failed", extra={"job": job, "period": period.isoformat()})
        error = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            async with db.transaction() as conn:
                await periods.record_failure(conn, job, period, started, error)
        except Exception:
            _log.exception("could not record the failed run")
        return PeriodResult(job, period, "failed", error=error)
    finally:
        memory.release_memory()


async def rollup_day(db: Database, day: dt.date) -> None:
    """Recompute every event rollup of the UTC ``day`` from raw events; a no-op for a finalised day.

    Waits for a run of the same day elsewhere to finish rather than skipping (contract with retention).
    """
    runner = _runner(db, force=True)
    try:
        result = await _run_period(db, runner, "daily", day_start(day), runner.day_work(day), wait=True)
    finally:
        await runner.close()
    if result.status == "failed":
        raise RuntimeError(f"rollup of {day} failed: {result.error}")


@asynccontextmanager
async def _job_lock(db: Database, job: str) -> AsyncIterator[bool]:
    """Hold the job's advisory lock for a whole scheduled run; False if another process runs it.

    The periods are still locked one by one (against backfills and ``rollup_day``), but one runner per job
    also keeps the order of a run intact: a day's WAU/MAU are computed after the days before it.
    """
    async with job_lock(db, f"aggregation-job:{job}") as mine:
        yield mine


async def _unfinalised(
    db: Database, job: str, listed: list[dt.datetime]
) -> tuple[list[dt.datetime], list[PeriodResult]]:
    """``listed`` less the finalised periods, which come back as ``finalised`` results."""
    async with db.transaction() as conn:
        return await periods.drop_finalised(conn, job, listed)


async def run_daily(db: Database, *, today: dt.date | None = None) -> list[PeriodResult]:
    """The daily job: recompute yesterday and every changed or failed day, then cascade WAU/MAU.

    Active users of a day depend on the 29 days before it, so a recomputed day D also refreshes the
    active users of D+1 .. D+29 (up to yesterday).
    """
    day = today or utcnow().date()
    async with _job_lock(db, "daily") as mine:
        return await _run_daily(db, day) if mine else []


async def _run_daily(db: Database, today: dt.date) -> list[PeriodResult]:
    runner = _runner(db)
    try:
        async with db.transaction() as conn:
            listed = await periods.candidates(conn, "daily", today)
        todo, results = await _unfinalised(db, "daily", listed)
        for p in todo:
            results.append(await _run_period(db, runner, "daily", p, runner.day_work(p.date())))
        follow = periods.follow_up_days(results, today)
        todo, skipped = await _unfinalised(db, "active_users", follow)
        results += skipped
        for p in todo:
            results.append(
                await _run_period(db, runner, "active_users", p, runner.active_users_work(p.date()))
            )
        async with db.transaction() as conn:
            await repo.prune_people_sets(conn)
    finally:
        await runner.close()
    return results


async def run_hourly(db: Database, *, now: dt.datetime | None = None) -> list[PeriodResult]:
    """The hourly job: the last closed hour plus every changed or failed hour of the last 48 hours."""
    at = now or utcnow()
    async with _job_lock(db, "hourly") as mine:
        return await _run_hourly(db, at) if mine else []


async def _run_hourly(db: Database, now: dt.datetime) -> list[PeriodResult]:
    async with db.transaction() as conn:
        listed = await periods.hourly_candidates(conn, now)
    todo, results = await _unfinalised(db, "hourly", listed)
    runner = _runner(db)
    try:
        for p in todo:
            results.append(await _run_period(db, runner, "hourly", p, runner.hour_work(p)))
    finally:
        await runner.close()
    return results


async def run_conversions(db: Database, *, today: dt.date | None = None) -> list[PeriodResult]:
    """The conversions job: experiment counts of yesterday and of every changed or failed day, in order."""
    day = today or utcnow().date()
    async with _job_lock(db, "conversions") as mine:
        return await _run_conversions(db, day) if mine else []


async def _run_conversions(db: Database, today: dt.date) -> list[PeriodResult]:
    async with db.transaction() as conn:
        listed = await periods.candidates(conn, "conversions", today)
    todo, results = await _unfinalised(db, "conversions", listed)
    runner = _runner(db)
    try:
        for p in todo:
            results.append(await _run_period(db, runner, "conversions", p, runner.conversions_work(p.date())))
    finally:
        await runner.close()
    return results


def _units(runner: Runner, job: str, day: dt.date) -> list[tuple[dt.datetime, Work]]:
    """The periods of ``job`` on ``day`` with their work."""
    if job == "hourly":
        return [(day_start(day) + h * HOUR, runner.hour_work(day_start(day) + h * HOUR)) for h in range(24)]
    if job == "daily":
        return [(day_start(day), runner.day_work(day))]
    if job == "active_users":
        return [(day_start(day), runner.active_users_work(day))]
    if job == "conversions":
        return [(day_start(day), runner.conversions_work(day))]
    raise ValueError(f"unknown job {job!r}")


async def aggregate_range(
    db: Database,
    start: dt.date,
    end: dt.date,
    jobs: Iterable[str] = ("daily", "conversions"),
    *,
    on_period: Callable[[PeriodResult], None] | None = None,
) -> list[PeriodResult]:
    """Backfill: recompute every period of ``jobs`` for days ``start ..= end``, whatever the ledger says.

    Days run in order, one transaction each, so memory stays at one day's events plus 30 people sets.
    """
    runner = _runner(db, force=True)
    results: list[PeriodResult] = []
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    try:
        for job in jobs:
            for day in days:
                for period, work in _units(runner, job, day):
                    result = await _run_period(db, runner, job, period, work)
                    results.append(result)
                    if on_period is not None:
                        on_period(result)
    finally:
        await runner.close()
    return results


# --- API exports ----------------------------------------------------------------------------------


async def run_export(db: Database, data_dir: Path, export_id: uuid.UUID, gate: asyncio.Semaphore) -> None:
    """Write an API export's file, recording progress and the outcome in its row. Never raises.

    Started by ``POST /v1/exports`` as a background task, after the request's transaction committed.
    """
    async with gate:
        try:
            async with db.transaction() as conn:
                row = await exports.claim_export(conn, export_id)
            if row is None:
                return

            async def heartbeat(rows: int) -> None:
                async with db.transaction() as conn:
                    await exports.record_progress(conn, export_id, rows)

            path = exports.export_file_path(data_dir, export_id)
            rows, size = await exports.write_export_file(
                db.url, path, row["date_from"], row["date_to"], heartbeat
            )
            async with db.transaction() as conn:
                await exports.finish_export(conn, export_id, rows, size)
                await events.emit(conn, "export.completed", {"export_id": export_id, "rows": rows})
        except Exception as exc:
            _log.exception("export failed", extra={"export_id": str(export_id)})
            try:
                async with db.transaction() as conn:
                    await exports.record_failure(conn, export_id, exc)
                    failed = {"export_id": export_id, "error": type(exc).__name__}
                    await events.emit(conn, "export.failed", failed)
            except Exception:
                _log.exception("could not record the failed export")


async def expire_exports(db: Database, data_dir: Path, ttl: dt.timedelta = exports.EXPORT_TTL) -> int:
    """Delete the files of exports finished more than ``ttl`` ago and mark them expired."""
    async with db.transaction() as conn:
        return await exports.expire_exports(conn, data_dir, ttl)


# --- Schedule -------------------------------------------------------------------------------------


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
            lambda db: expire_exports(db, app.state.settings.data_dir),
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
