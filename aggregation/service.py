"""Computing one rollup period inside the caller's transaction (the jobs in ``aggregation.jobs`` open it).

A period is computed by reading its raw events through ADBC into Polars (in a worker thread), running the
pure transforms, and replacing the period's rollup rows plus its ledger row on the given asyncpg connection.
Which periods to compute is ``aggregation.periods``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from aggregation import frames, source, transforms
from aggregation import repository as repo
from aggregation.periods import NO_EVENTS, WINDOW_DAYS, PeriodResult
from aggregation.repository import DAY, HOUR, Fingerprint, day_start
from kernel.auth import utcnow
from kernel.scheduler import try_job_lock

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Runner", "Work"]

# One period's work on the caller's connection: (rows written, the raw events' fingerprint).
Work = Callable[["asyncpg.Connection"], Awaitable[tuple[int, Fingerprint | None]]]

_log = logging.getLogger("corp_astro.aggregation")


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
    raw = frames.read_rollup_events(adbc_conn, start, start + DAY)
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
    raw = frames.read_rollup_events(adbc_conn, hour, hour + HOUR)
    rows = transforms.hourly_rollup(transforms.with_person(raw.lazy())).collect().rows()
    return rows, _fingerprint_of(raw)


def _people_of_day(adbc_conn: Any, day: dt.date) -> pl.Series:
    start = day_start(day)
    ids = frames.read_identities(adbc_conn, start, start + DAY)
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
class Runner:
    """One job run: an ADBC connection for reads and a sliding window of daily people sets.

    ``url`` is the database the reads go to (the job's); every write goes through the connection the job
    passes to ``run_in``.
    """

    url: str
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
            self._adbc = await asyncio.to_thread(source.open_connection, self.url)
        return await asyncio.to_thread(fn, self._adbc, *args)

    async def _day_output(self, day: dt.date) -> _DayOutput:
        out: _DayOutput = await self.read(_compute_day, day)
        return out

    async def close(self) -> None:
        """Close the ADBC connection."""
        if self._adbc is not None:
            adbc_conn, self._adbc = self._adbc, None
            await asyncio.to_thread(adbc_conn.close)

    async def run_in(
        self,
        conn: asyncpg.Connection,
        job: str,
        period: dt.datetime,
        work: Work,
        *,
        started: dt.datetime,
        wait: bool = False,
    ) -> PeriodResult:
        """Run ``work`` for one period in the caller's transaction, single-runner, and record it in the
        ledger. ``wait``: wait for a run of the same day elsewhere instead of skipping it as ``busy``."""
        day = period.date()
        if wait:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"rollup-day:{day}")
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

    def forget(self) -> None:
        """Drop cached state after a failed period: its transaction may have been about to store some."""
        self._seen_day = None
        self._people.clear()

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

    def day_work(self, day: dt.date) -> Work:
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
                conn, "hourly", [(h, out.hour_fingerprints.get(h, NO_EVENTS)) for h in hours], now
            )
            return len(out.hourly) + len(out.daily) + 1, out.fingerprint

        return work

    def hour_work(self, hour: dt.datetime) -> Work:
        """Recompute one hour's hourly rows."""

        async def work(conn: asyncpg.Connection) -> tuple[int, Fingerprint | None]:
            rows, fingerprint = await self.read(_compute_hour, hour)
            await repo.replace_hourly(conn, hour, hour + HOUR, rows)
            return len(rows), fingerprint

        return work

    def active_users_work(self, day: dt.date) -> Work:
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
            fingerprint = (await repo.day_fingerprints(conn, day, day + DAY)).get(day, NO_EVENTS)
            rows = await repo.replace_experiment_daily(conn, day)
            return rows, fingerprint

        return work


# The job drivers (they open the per-period transactions) moved to ``aggregation.jobs``; these names stay
# importable from here until their last caller (tests/integration/aggregation/test_conversions_and_jobs.py)
# imports them from there. Resolved on use, through importlib, so this module never imports the jobs.
