"""The rollup jobs: which periods to (re)compute, and computing one period in one transaction.

A period is computed by reading its raw events through ADBC into Polars (in a worker thread), running the
pure transforms, and replacing the period's rollup rows plus its ledger row in one asyncpg transaction.

Late data: every ledger row stores the count and newest ``created_at`` of the raw events the run read (taken
from the very frame that was aggregated). Each job compares those with the current values per period over
its look-back window; a period whose values differ (an offline queue flushed, an import, an erasure) is
recomputed. Finalised days (retention contract) are never recomputed; late data for them is logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from aggregation import memory, source, transforms
from aggregation import repository as repo
from aggregation.repository import DAY, HOUR, Fingerprint, day_start
from kernel.auth import utcnow
from kernel.scheduler import try_job_lock

if TYPE_CHECKING:
    import asyncpg

    from kernel.db import Database

__all__ = [
    "JOBS",
    "LOOKBACK_DAYS",
    "PeriodResult",
    "aggregate_range",
    "rollup_day",
    "run_conversions",
    "run_daily",
    "run_hourly",
]

_log = logging.getLogger("corp_astro.aggregation")

JOBS = ("hourly", "daily", "active_users", "conversions")
# How far back each run looks for late data; older changes need `corp-astro aggregate`.
LOOKBACK_DAYS = 35
HOURLY_LOOKBACK = dt.timedelta(hours=48)
# WAU/MAU windows: the day itself and the 6 / 29 days before it.
WINDOW_DAYS = 30
_NO_EVENTS = Fingerprint(0, None)


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """What one (job, period) run did: ``ok``, ``failed``, ``busy`` (locked elsewhere), ``done`` (someone
    else finished it since it was listed) or ``finalised`` (skipped by contract)."""

    job: str
    period: dt.datetime
    status: str
    rows: int = 0
    error: str | None = None


@dataclass
class _DayOutput:
    hourly: list[tuple[Any, ...]]
    daily: list[tuple[Any, ...]]
    people: pl.Series
    fingerprint: Fingerprint
    hour_fingerprints: dict[dt.datetime, Fingerprint]


def _fingerprint_of(frame: pl.DataFrame) -> Fingerprint:
    newest = frame["created_at"].max() if frame.height else None
    return Fingerprint(frame.height, newest)  # type: ignore[arg-type]


def _compute_day(adbc_conn: Any, day: dt.date) -> _DayOutput:
    start = day_start(day)
    raw = source.read_rollup_events(adbc_conn, start, start + DAY)
    events = transforms.with_person(raw.lazy())
    hours = (
        raw.lazy()
        .group_by(pl.col("timestamp").dt.truncate("1h").alias("hour"))
        .agg(n=pl.len(), newest=pl.col("created_at").max())
    )
    hourly, daily, people, per_hour = pl.collect_all(
        [
            transforms.hourly_rollup(events),
            transforms.daily_rollup(events),
            transforms.distinct_people(events),
            hours,
        ]
    )
    return _DayOutput(
        hourly=hourly.rows(),
        daily=daily.rows(),
        people=people["person"],
        fingerprint=_fingerprint_of(raw),
        hour_fingerprints={r[0]: Fingerprint(r[1], r[2]) for r in per_hour.iter_rows()},
    )


def _compute_hour(adbc_conn: Any, hour: dt.datetime) -> tuple[list[tuple[Any, ...]], Fingerprint]:
    raw = source.read_rollup_events(adbc_conn, hour, hour + HOUR)
    rows = transforms.hourly_rollup(transforms.with_person(raw.lazy())).collect().rows()
    return rows, _fingerprint_of(raw)


def _people_of_day(adbc_conn: Any, day: dt.date) -> pl.Series:
    start = day_start(day)
    ids = source.read_identities(adbc_conn, start, start + DAY)
    people = transforms.distinct_people(transforms.with_person(ids.lazy())).collect()
    return people["person"]


def _encode_people(people: pl.Series) -> bytes:
    buf = io.BytesIO()
    pl.DataFrame({"person": people}).write_ipc(buf, compression="zstd")
    return buf.getvalue()


def _decode_people(blob: bytes) -> pl.Series:
    return pl.read_ipc(io.BytesIO(blob))["person"]


def _window_frame(window: dict[dt.date, pl.Series]) -> pl.LazyFrame:
    frames = [
        people.cast(pl.String).to_frame("person").with_columns(day=pl.lit(d, dtype=pl.Date))
        for d, people in window.items()
    ]
    if not frames:
        return pl.LazyFrame(schema={"person": pl.String, "day": pl.Date})
    return pl.concat(frames).lazy()


def _build_last_seen(window: dict[dt.date, pl.Series], day: dt.date) -> pl.DataFrame:
    return transforms.last_seen(_window_frame(window), day).collect()


def _advance_last_seen(seen: pl.DataFrame, people: pl.Series, day: dt.date) -> pl.DataFrame:
    today = people.cast(pl.String).to_frame("person").lazy()
    return transforms.advance_last_seen(seen.lazy(), today, day).collect()


def _counts(seen: pl.DataFrame, day: dt.date) -> tuple[int, int, int]:
    row = transforms.active_users_from_last_seen(seen.lazy(), day).collect().row(0)
    return int(row[1]), int(row[2]), int(row[3])


@dataclass
class _Runner:
    """One job run: an ADBC connection for reads and a sliding window of daily people sets."""

    db: Database
    listed_at: dt.datetime = field(default_factory=utcnow)
    force: bool = False
    _adbc: Any = None
    _people: dict[dt.date, pl.Series] = field(default_factory=dict)
    # Each person's last active day as of ``_seen_day``, advanced day by day on consecutive runs.
    _seen: pl.DataFrame | None = None
    _seen_day: dt.date | None = None

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking ADBC read (and its Polars work) in a worker thread."""
        if self._adbc is None:
            self._adbc = await asyncio.to_thread(source.open_connection, self.db.url)
        return await asyncio.to_thread(fn, self._adbc, *args)

    async def _day_output(self, day: dt.date) -> _DayOutput:
        out: _DayOutput = await self.read(_compute_day, day)
        return out

    async def close(self) -> None:
        """Close the ADBC connection."""
        if self._adbc is not None:
            adbc_conn, self._adbc = self._adbc, None
            await asyncio.to_thread(adbc_conn.close)

    async def run_period(
        self,
        job: str,
        period: dt.datetime,
        work: Callable[[asyncpg.Connection], Awaitable[tuple[int, Fingerprint | None]]],
        *,
        wait: bool = False,
    ) -> PeriodResult:
        """Run ``work`` for one period in one transaction, single-runner, and record it in the ledger."""
        started = utcnow()
        day = period.date()
        try:
            async with self.db.transaction() as conn:
                if wait:
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"rollup-day:{day}"
                    )
                elif not await try_job_lock(conn, f"aggregation:{job}:{period.isoformat()}") or (
                    job in ("hourly", "daily") and not await try_job_lock(conn, f"rollup-day:{day}")
                ):
                    return PeriodResult(job, period, "busy")
                if await repo.finalised_days(conn, day, day):
                    return PeriodResult(job, period, "finalised")
                if not self.force and await self._done_since_listed(conn, job, period):
                    return PeriodResult(job, period, "done")
                rows, fingerprint = await work(conn)
                await repo.record_run(
                    conn, job, period, status="ok", rows=rows, fingerprint=fingerprint,
                    started_at=started, finished_at=utcnow(),
                )  # fmt: skip
            return PeriodResult(job, period, "ok", rows)
        except Exception as exc:
            self._seen_day = None
            _log.exception("aggregation period failed", extra={"job": job, "period": period.isoformat()})
            # Forget cached sets: the failed transaction may have been about to store some of them.
            self._people.clear()
            error = f"{type(exc).__name__}: {exc}"[:2000]
            try:
                async with self.db.transaction() as conn:
                    await repo.record_run(
                        conn, job, period, status="failed", rows=0, fingerprint=None,
                        started_at=started, finished_at=utcnow(), error=error,
                    )  # fmt: skip
            except Exception:
                _log.exception("could not record the failed run")
            return PeriodResult(job, period, "failed", error=error)
        finally:
            memory.release_memory()

    async def _done_since_listed(self, conn: asyncpg.Connection, job: str, period: dt.datetime) -> bool:
        # Another process may have finished this period between our listing and our lock.
        row = await conn.fetchrow(
            "SELECT status, finished_at FROM aggregation_runs WHERE job = $1 AND period = $2", job, period
        )
        return row is not None and row["status"] == "ok" and row["finished_at"] >= self.listed_at

    # --- Work units ---------------------------------------------------------------------------------

    async def _people_for(self, conn: asyncpg.Connection, day: dt.date) -> pl.Series:
        """The people active on ``day``: cached, else stored, else rebuilt from raw (and only cached:
        storing it here would lock a row another transaction computing that very day may hold)."""
        if day not in self._people:
            stored = await repo.load_people_sets(conn, [day])
            if day in stored:
                self._set_people(day, await asyncio.to_thread(_decode_people, stored[day]))
            else:
                self._set_people(day, await self.read(_people_of_day, day))
        return self._people[day]

    async def _window(self, conn: asyncpg.Connection, day: dt.date) -> dict[dt.date, pl.Series]:
        """People sets of the 30 days ending ``day``."""
        first = day - dt.timedelta(days=WINDOW_DAYS - 1)
        wanted = [first + dt.timedelta(days=i) for i in range(WINDOW_DAYS)]
        missing = [d for d in wanted if d not in self._people]
        stored = await repo.load_people_sets(conn, missing) if missing else {}
        for d in missing:
            if d in stored:
                self._set_people(d, await asyncio.to_thread(_decode_people, stored[d]))
        return {d: await self._people_for(conn, d) for d in wanted}

    async def _write_active_users(self, conn: asyncpg.Connection, day: dt.date) -> int:
        if self._seen is not None and self._seen_day == day - DAY:
            people = await self._people_for(conn, day)
            seen = await asyncio.to_thread(_advance_last_seen, self._seen, people, day)
        else:
            window = await self._window(conn, day)
            seen = await asyncio.to_thread(_build_last_seen, window, day)
        self._seen, self._seen_day = seen, day
        # Only the running state is needed from here on (a rebuild reloads the stored sets).
        self._people.clear()
        dau, wau, mau = await asyncio.to_thread(_counts, seen, day)
        await repo.replace_active_users(conn, day, dau, wau, mau)
        return 1

    def _set_people(self, day: dt.date, people: pl.Series) -> None:
        self._people[day] = people
        if self._seen_day is not None and day <= self._seen_day:
            self._seen_day = None  # the running last-seen state no longer matches the sets

    def day_work(
        self, day: dt.date
    ) -> Callable[[asyncpg.Connection], Awaitable[tuple[int, Fingerprint | None]]]:
        """Recompute a whole day: 24 hourly rows, daily rows, its people set and active users."""

        async def work(conn: asyncpg.Connection) -> tuple[int, Fingerprint | None]:
            out = await self._day_output(day)
            start = day_start(day)
            await repo.replace_hourly(conn, start, start + DAY, out.hourly)
            await repo.replace_daily(conn, day, out.daily)
            await repo.replace_people_set(conn, day, len(out.people), _encode_people(out.people))
            self._set_people(day, out.people)
            await self._write_active_users(conn, day)
            now = utcnow()
            # The day's hours are now current too, so the hourly job need not redo them.
            hours = [start + h * HOUR for h in range(24)]
            await repo.record_ok_runs(
                conn, "hourly", [(h, out.hour_fingerprints.get(h, _NO_EVENTS)) for h in hours], now
            )
            return len(out.hourly) + len(out.daily) + 1, out.fingerprint

        return work

    def hour_work(
        self, hour: dt.datetime
    ) -> Callable[[asyncpg.Connection], Awaitable[tuple[int, Fingerprint | None]]]:
        """Recompute one hour's hourly rows."""

        async def work(conn: asyncpg.Connection) -> tuple[int, Fingerprint | None]:
            rows, fingerprint = await self.read(_compute_hour, hour)
            await repo.replace_hourly(conn, hour, hour + HOUR, rows)
            return len(rows), fingerprint

        return work

    def active_users_work(
        self, day: dt.date
    ) -> Callable[[asyncpg.Connection], Awaitable[tuple[int, Fingerprint | None]]]:
        """Recompute DAU/WAU/MAU of a day from the stored people sets."""

        async def work(conn: asyncpg.Connection) -> tuple[int, Fingerprint | None]:
            return await self._write_active_users(conn, day), None

        return work

    def conversions_work(
        self, day: dt.date
    ) -> Callable[[asyncpg.Connection], Awaitable[tuple[int, Fingerprint | None]]]:
        """Recompute a day's experiment counts from the assignments (experiments marks conversions)."""

        async def work(conn: asyncpg.Connection) -> tuple[int, Fingerprint | None]:
            # Watermark first: events committed after it are seen as late data by the next run.
            fingerprint = (await repo.day_fingerprints(conn, day, day + DAY)).get(day, _NO_EVENTS)
            rows = await repo.replace_experiment_daily(conn, day)
            return rows, fingerprint

        return work


# --- Public entry points --------------------------------------------------------------------------


async def rollup_day(db: Database, day: dt.date) -> None:
    """Recompute every event rollup of the UTC ``day`` from raw events; a no-op for a finalised day.

    Waits for a run of the same day elsewhere to finish rather than skipping (contract with retention).
    """
    runner = _Runner(db, force=True)
    try:
        result = await runner.run_period("daily", day_start(day), runner.day_work(day), wait=True)
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
    async with db.transaction() as conn:
        yield await try_job_lock(conn, f"aggregation-job:{job}")


def _changed(
    periods: Iterable[dt.datetime],
    current: dict[dt.datetime, Fingerprint],
    ledger: dict[dt.datetime, repo.LedgerRow],
    *,
    include_empty: bool,
) -> list[dt.datetime]:
    out = []
    for p in periods:
        row = ledger.get(p)
        now = current.get(p, _NO_EVENTS)
        if row is None:
            if include_empty or now.events:
                out.append(p)
        elif row.status != "ok" or row.fingerprint != now:
            out.append(p)
    return out


async def _drop_finalised(
    db: Database, job: str, periods: list[dt.datetime]
) -> tuple[list[dt.datetime], list[PeriodResult]]:
    if not periods:
        return [], []
    async with db.pool.acquire() as conn:
        final = await repo.finalised_days(conn, min(periods).date(), max(periods).date())
    kept, skipped = [], []
    for p in periods:
        if p.date() in final:
            # Raw data for a finalised day may already be gone: recomputing could only lose counts.
            _log.warning("late data for a finalised day ignored", extra={"job": job, "period": p.isoformat()})
            skipped.append(PeriodResult(job, p, "finalised"))
        else:
            kept.append(p)
    return kept, skipped


async def _candidates(db: Database, job: str, today: dt.date) -> list[dt.datetime]:
    lo = today - dt.timedelta(days=LOOKBACK_DAYS)
    async with db.pool.acquire() as conn:
        current = {day_start(d): fp for d, fp in (await repo.day_fingerprints(conn, lo, today)).items()}
        ledger = await repo.ledger_rows(conn, job, day_start(lo), day_start(today))
        retry = await repo.retry_periods(conn, job, day_start(lo))
    days = [day_start(lo + dt.timedelta(days=i)) for i in range((today - lo).days)]
    return sorted(set(retry) | set(_changed(days, current, ledger, include_empty=True)))


async def run_daily(db: Database, *, today: dt.date | None = None) -> list[PeriodResult]:
    """The daily job: recompute yesterday and every changed or failed day, then cascade WAU/MAU.

    Active users of a day depend on the 29 days before it, so a recomputed day D also refreshes the
    active users of D+1 .. D+29 (up to yesterday).
    """
    today = today or utcnow().date()
    async with _job_lock(db, "daily") as mine:
        return await _run_daily(db, today) if mine else []


async def _run_daily(db: Database, today: dt.date) -> list[PeriodResult]:
    runner = _Runner(db)
    results: list[PeriodResult] = []
    try:
        periods, skipped = await _drop_finalised(db, "daily", await _candidates(db, "daily", today))
        results += skipped
        for p in periods:
            results.append(await runner.run_period("daily", p, runner.day_work(p.date())))
        redone = {r.period.date() for r in results if r.status == "ok"}
        follow = sorted(
            {
                d + dt.timedelta(days=i)
                for d in redone
                for i in range(1, WINDOW_DAYS)
                if d + dt.timedelta(days=i) < today
            }
            - redone
        )
        follow_periods, skipped = await _drop_finalised(db, "active_users", [day_start(d) for d in follow])
        results += skipped
        for p in follow_periods:
            results.append(await runner.run_period("active_users", p, runner.active_users_work(p.date())))
        async with db.transaction() as conn:
            await repo.prune_people_sets(conn)
    finally:
        await runner.close()
    return results


async def run_hourly(db: Database, *, now: dt.datetime | None = None) -> list[PeriodResult]:
    """The hourly job: the last closed hour plus every changed or failed hour of the last 48 hours."""
    now = now or utcnow()
    async with _job_lock(db, "hourly") as mine:
        return await _run_hourly(db, now) if mine else []


async def _run_hourly(db: Database, now: dt.datetime) -> list[PeriodResult]:
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    lo = current_hour - HOURLY_LOOKBACK
    async with db.pool.acquire() as conn:
        current = await repo.hour_fingerprints(conn, lo, current_hour)
        ledger = await repo.ledger_rows(conn, "hourly", lo, current_hour)
        retry = await repo.retry_periods(conn, "hourly", lo)
    hours = [lo + i * HOUR for i in range(int(HOURLY_LOOKBACK / HOUR))]
    changed = set(_changed(hours, current, ledger, include_empty=False)) | set(retry)
    # The last closed hour always gets a ledger row, even when empty, so "no data" is visible.
    if (current_hour - HOUR) not in ledger:
        changed.add(current_hour - HOUR)
    periods, results = await _drop_finalised(db, "hourly", sorted(changed))
    runner = _Runner(db)
    try:
        for p in periods:
            results.append(await runner.run_period("hourly", p, runner.hour_work(p)))
    finally:
        await runner.close()
    return results


async def run_conversions(db: Database, *, today: dt.date | None = None) -> list[PeriodResult]:
    """The conversions job: goal events of yesterday and of every changed or failed day, in day order."""
    today = today or utcnow().date()
    async with _job_lock(db, "conversions") as mine:
        return await _run_conversions(db, today) if mine else []


async def _run_conversions(db: Database, today: dt.date) -> list[PeriodResult]:
    periods, results = await _drop_finalised(db, "conversions", await _candidates(db, "conversions", today))
    runner = _Runner(db)
    try:
        for p in periods:
            results.append(await runner.run_period("conversions", p, runner.conversions_work(p.date())))
    finally:
        await runner.close()
    return results


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
    runner = _Runner(db, force=True)
    results: list[PeriodResult] = []
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    try:
        for job in jobs:
            for day in days:
                units: list[tuple[dt.datetime, Callable[..., Any]]]
                if job == "hourly":
                    units = [(day_start(day) + h * HOUR, runner.hour_work) for h in range(24)]
                elif job == "daily":
                    units = [(day_start(day), lambda p: runner.day_work(p.date()))]
                elif job == "active_users":
                    units = [(day_start(day), lambda p: runner.active_users_work(p.date()))]
                elif job == "conversions":
                    units = [(day_start(day), lambda p: runner.conversions_work(p.date()))]
                else:
                    raise ValueError(f"unknown job {job!r}")
                for period, make in units:
                    result = await runner.run_period(job, period, make(period))
                    results.append(result)
                    if on_period is not None:
                        on_period(result)
    finally:
        await runner.close()
    return results
