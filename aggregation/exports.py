"""Parquet exports of raw events: a hive-partitioned dataset (CLI) or one file (API).

Both stream a quarter of a UTC day at a time (events and their properties read through ADBC, shaped by
Polars, appended to the day's file as row groups), so memory holds one slice whatever the range. Output:
zstd, timestamps in microseconds UTC, ids as text, properties as one JSON object string per event
(PostHog's convention).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from aggregation import repository as repo
from aggregation import source, transforms
from aggregation.errors import BadRange, ExportNotFound, ExportNotReady, TooManyExports
from aggregation.memory import release_memory
from aggregation.repository import DAY, day_start
from core_api.auth import utcnow

if TYPE_CHECKING:
    import asyncpg

    from core_api.auth import AuthUser
    from core_api.db import Database

__all__ = [
    "EXPORT_TTL",
    "MAX_EXPORT_DAYS",
    "create_export",
    "expire_exports",
    "export_file_path",
    "get_export",
    "run_export",
    "slice_frames",
    "write_dataset",
]

_log = logging.getLogger("corp_astro.aggregation.exports")

MAX_EXPORT_DAYS = 366
MAX_UNFINISHED_PER_USER = 3
# Files of finished API exports are deleted after this long (status becomes "expired").
EXPORT_TTL = dt.timedelta(days=7)
# A running export that has not reported progress for this long died with its process.
STALE_AFTER = dt.timedelta(minutes=10)
_ROW_GROUP = 128 * 1024


def _load_slice(conn: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    # Properties carry their event's timestamp, so one time slice holds whole events with all properties.
    events = source.read_export_events(conn, start, end)
    props = source.read_export_properties(conn, start, end)
    return transforms.export_rows(events.lazy(), transforms.properties_json(props.lazy())).collect()


def slice_frames(
    url: str, start: dt.date, end: dt.date
) -> Generator[tuple[dt.date, pl.DataFrame], None, None]:
    """Export rows of the days ``start ..= end``, in time order, one slice (a quarter day) at a time.

    Every day yields at least one (possibly empty) frame. Memory holds one slice whatever the range or the
    size of a day. (Prefetching the next slice in a thread was measured no faster on the 2-core machine and
    held more memory, so reads and writes simply alternate.)
    """
    with source.connect(url) as conn:
        for i in range((end - start).days + 1):
            day = start + dt.timedelta(days=i)
            lo = day_start(day)
            while lo < day_start(day) + DAY:
                hi = lo + source.SLICE
                yield day, _load_slice(conn, lo, hi)
                release_memory()
                lo = hi


@dataclass(frozen=True, slots=True)
class DatasetStats:
    """What a dataset export wrote."""

    rows: int
    files: int
    bytes: int


def _swap_in(new_dir: Path, target: Path, trash: Path) -> None:
    # Two renames on one file system: readers see the old day or the new one, never both or a half.
    old = None
    if target.exists():
        old = trash / target.name
        os.rename(target, old)
    os.rename(new_dir, target)
    if old is not None:
        shutil.rmtree(old)


class _DayFile:
    """The staging file of one day of a dataset, written a slice at a time."""

    def __init__(self, staging: Path, day: dt.date) -> None:
        self.day = day
        self.dir = staging / f"event_date={day.isoformat()}"
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        table = frame.to_arrow()
        if self._writer is None:
            self.dir.mkdir()
            self._writer = pq.ParquetWriter(self.dir / "part-0.parquet", table.schema, compression="zstd")
        self._writer.write_table(table, row_group_size=_ROW_GROUP)
        self.rows += frame.height

    def finish(self, out: Path, trash: Path) -> int:
        """Swap the day into ``out`` (or remove it there when it has no events); returns its bytes."""
        target = out / self.dir.name
        if self._writer is None:
            if target.exists():
                shutil.rmtree(target)
            return 0
        self._writer.close()
        size = (self.dir / "part-0.parquet").stat().st_size
        _swap_in(self.dir, target, trash)
        return size


def write_dataset(
    url: str,
    start: dt.date,
    end: dt.date,
    out: Path,
    on_day: Callable[[dt.date, int], None] | None = None,
) -> DatasetStats:
    """Write ``out/event_date=YYYY-MM-DD/part-0.parquet`` for each day with events.

    Each day is written to a staging directory beside ``out`` and then swapped in, so re-running replaces
    a day (and removes it when it no longer has events) instead of adding a second copy.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    trash = staging / ".old"
    trash.mkdir(parents=True)
    rows = files = size = 0
    current: _DayFile | None = None

    def finish(day_file: _DayFile) -> None:
        nonlocal rows, files, size
        written = day_file.finish(out, trash)
        rows += day_file.rows
        files += 1 if day_file.rows else 0
        size += written
        if on_day is not None:
            on_day(day_file.day, day_file.rows)

    try:
        for day, frame in slice_frames(url, start, end):
            if current is None or current.day != day:
                if current is not None:
                    finish(current)
                current = _DayFile(staging, day)
            current.write(frame)
        if current is not None:
            finish(current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DatasetStats(rows=rows, files=files, bytes=size)


class _FileWriter:
    """One Parquet file with an ``event_date`` column, written a slice at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, day: dt.date, frame: pl.DataFrame) -> None:
        table = frame.with_columns(event_date=pl.lit(day, dtype=pl.Date)).to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table, row_group_size=_ROW_GROUP)
        self.rows += frame.height

    def close(self) -> None:
        if self._writer is None:  # no day at all: still a valid, empty file
            empty = pl.DataFrame(schema={**transforms.EXPORT_SCHEMA, "event_date": pl.Date()}).to_arrow()
            self._writer = pq.ParquetWriter(self.path, empty.schema, compression="zstd")
            self._writer.write_table(pa.Table.from_batches([], schema=empty.schema))
        self._writer.close()


# --- The API's exports ------------------------------------------------------------------------------


def parse_range(raw_from: str | None, raw_to: str | None, max_days: int) -> tuple[dt.date, dt.date]:
    """Two ISO dates, ``from <= to``, at most ``max_days`` days inclusive; else ``BadRange`` (422)."""
    if not raw_from or not raw_to:
        raise BadRange("Both 'from' and 'to' are required (YYYY-MM-DD).")
    try:
        start, end = dt.date.fromisoformat(raw_from), dt.date.fromisoformat(raw_to)
    except (TypeError, ValueError) as exc:
        raise BadRange("'from' and 'to' must be dates (YYYY-MM-DD).") from exc
    if end < start:
        raise BadRange("'to' is before 'from'.")
    if (end - start).days + 1 > max_days:
        raise BadRange(f"The range is limited to {max_days} days.", details={"max_days": max_days})
    return start, end


def export_file_path(data_dir: Path, export_id: uuid.UUID) -> Path:
    """Where the file of an API export lives."""
    return data_dir / "exports" / f"{export_id}.parquet"


async def create_export(
    conn: asyncpg.Connection, user: AuthUser, raw_from: str | None, raw_to: str | None
) -> asyncpg.Record:
    """Validate and record a pending export; the caller starts ``run_export`` after commit."""
    start, end = parse_range(raw_from, raw_to, MAX_EXPORT_DAYS)
    if await repo.count_unfinished_exports(conn, user.user_id) >= MAX_UNFINISHED_PER_USER:
        raise TooManyExports(
            f"At most {MAX_UNFINISHED_PER_USER} exports may be pending or running at once.", retry_after=30
        )
    return await repo.insert_export(conn, uuid.uuid4(), user.user_id, start, end)


async def get_export(conn: asyncpg.Connection, export_id: uuid.UUID) -> asyncpg.Record:
    """An export by id; one whose process died mid-way is reported (and recorded) as failed."""
    row = await repo.get_export(conn, export_id)
    if row is None:
        raise ExportNotFound("No export with this id.")
    beat = row["heartbeat_at"] or row["started_at"]
    if row["status"] == "running" and beat is not None and utcnow() - beat > STALE_AFTER:
        await repo.update_export(
            conn,
            export_id,
            status="failed",
            error="interrupted: the exporting process stopped",
            finished_at=utcnow(),
        )
        row = await repo.get_export(conn, export_id)
    assert row is not None
    return row


async def download_path(
    conn: asyncpg.Connection, data_dir: Path, export_id: uuid.UUID
) -> tuple[Path, asyncpg.Record]:
    """The finished file of an export, or ``ExportNotReady`` (409)."""
    row = await get_export(conn, export_id)
    path = export_file_path(data_dir, export_id)
    if row["status"] != "done" or not path.exists():
        raise ExportNotReady(f"The export is {row['status']}; only a finished export can be downloaded.")
    return path, row


async def run_export(db: Database, data_dir: Path, export_id: uuid.UUID, gate: asyncio.Semaphore) -> None:
    """Write an API export's file, recording progress and the outcome in its row. Never raises."""
    async with gate:
        try:
            async with db.transaction() as conn:
                row = await repo.get_export(conn, export_id)
                if row is None or row["status"] != "pending":
                    return
                now = utcnow()
                await repo.update_export(conn, export_id, status="running", started_at=now, heartbeat_at=now)
            path = export_file_path(data_dir, export_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".parquet.tmp")
            writer = _FileWriter(tmp)
            frames = slice_frames(db.url, row["date_from"], row["date_to"])
            try:
                while (item := await asyncio.to_thread(next, frames, None)) is not None:
                    await asyncio.to_thread(writer.write, *item)
                    async with db.transaction() as conn:
                        await repo.update_export(conn, export_id, heartbeat_at=utcnow(), rows=writer.rows)
                await asyncio.to_thread(writer.close)
            finally:
                await asyncio.to_thread(frames.close)
            os.replace(tmp, path)
            async with db.transaction() as conn:
                await repo.update_export(
                    conn,
                    export_id,
                    status="done",
                    rows=writer.rows,
                    bytes=path.stat().st_size,
                    finished_at=utcnow(),
                )
        except Exception as exc:
            _log.exception("export failed", extra={"export_id": str(export_id)})
            try:
                async with db.transaction() as conn:
                    await repo.update_export(
                        conn, export_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                        finished_at=utcnow(),
                    )  # fmt: skip
            except Exception:
                _log.exception("could not record the failed export")


async def expire_exports(db: Database, data_dir: Path, ttl: dt.timedelta = EXPORT_TTL) -> int:
    """Delete the files of exports finished more than ``ttl`` ago and mark them expired."""
    async with db.transaction() as conn:
        rows = await conn.fetch(
            """UPDATE exports SET status = 'expired'
               WHERE status IN ('done', 'failed') AND finished_at < $1 RETURNING export_id""",
            utcnow() - ttl,
        )
        for r in rows:
            for path in (
                export_file_path(data_dir, r["export_id"]),
                export_file_path(data_dir, r["export_id"]).with_suffix(".parquet.tmp"),
            ):
                path.unlink(missing_ok=True)
    return len(rows)
