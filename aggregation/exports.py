"""Parquet exports of raw events: a hive-partitioned dataset (CLI) or one file (API).

Both stream a quarter of a UTC day at a time (``aggregation.export_rows``: events and their properties read
through ADBC as Arrow, shaped with Arrow and NumPy, appended to the day's file as row groups), so memory holds
one slice whatever the range. Output: zstd Parquet, one row per event with every event column; ids (``event_id``,
``user_id``, ``source_id``) as 16-byte ``FIXED_LEN_BYTE_ARRAY`` with the Parquet ``UUID`` logical type
(DuckDB reads ``UUID``, PyArrow ``arrow.uuid``, Polars 16-byte ``Binary``); timestamps microseconds UTC;
``properties`` one JSON object string of every property of the event (PostHog's convention; ``{}`` when it
has none; values stay strings, as stored). Nothing is converted per event in Python: the driver's ids are
written as they arrive and the JSON is built from the property rows with Arrow compute.

An API export's row records its progress: ``aggregation.jobs.run_export`` drives it, one transaction per
step, through the functions here that take its connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from aggregation import export_repository as repo
from aggregation.errors import BadRange, ExportNotFound, ExportNotReady, TooManyExports
from aggregation.export_rows import EXPORT_SCHEMA, export_table, properties_json, slice_tables
from aggregation.schemas import ExportOut, export_out
from kernel import events
from kernel.auth import utcnow
from kernel.errors import problem
from kernel.pagination import Page, decode_cursor, make_page
from kernel.resources import naive

if TYPE_CHECKING:
    import asyncpg

    from kernel.auth import AuthUser

__all__ = [
    "EXPORT_SCHEMA",
    "EXPORT_TTL",
    "MAX_EXPORT_DAYS",
    "claim_export",
    "create_export",
    "download_path",
    "expire_exports",
    "export_file_path",
    "export_table",
    "finish_export",
    "get_export",
    "parse_range",
    "properties_json",
    "record_failure",
    "record_progress",
    "slice_tables",
    "write_dataset",
    "write_export_file",
]

_log = logging.getLogger("corp_astro.aggregation.exports")

MAX_EXPORT_DAYS = 366
# The range of days any analytics or export request may name.
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(9998, 12, 31)
MAX_UNFINISHED_PER_USER = 3
# Files of finished API exports are deleted after this long (status becomes "expired").
EXPORT_TTL = dt.timedelta(days=7)
# A running export that has not reported progress for this long died with its process.
STALE_AFTER = dt.timedelta(minutes=10)
_ROW_GROUP = 128 * 1024
# Parquet writer settings, measured on a day of the benchmark (333k events; write time, file size):
# PyArrow's defaults (dictionary-encode and gather min/max statistics for every column) took 0.36 s and
# 15.7 MB; these 0.15-0.2 s and 10.8 MB. A dictionary of unique ids or message ids overflows and falls back
# to plain encoding after hashing a megabyte of values per page, so only columns with few distinct values
# get one; min/max statistics only help readers skip row groups by time or name (random ids never prune).
# zstd (level 1) takes about the time of lz4 or snappy here and writes 40 % smaller files (10.8 MB a day
# against 18-19 MB; uncompressed 31 MB).
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["event_name", "event_category"],
    "write_statistics": ["timestamp", "created_at", "received_at", "event_name", "event_category"],
}


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

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._writer is None:
            self.dir.mkdir()
            self._writer = pq.ParquetWriter(self.dir / "part-0.parquet", table.schema, **_WRITE_OPTIONS)
        self._writer.write_table(table, row_group_size=_ROW_GROUP)
        self.rows += table.num_rows

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
        for day, table in slice_tables(url, start, end):
            if current is None or current.day != day:
                if current is not None:
                    finish(current)
                current = _DayFile(staging, day)
            current.write(table)
        if current is not None:
            finish(current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DatasetStats(rows=rows, files=files, bytes=size)


class _FileWriter:
    """One Parquet file with an ``event_date`` column, written a slice at a time."""

    schema = EXPORT_SCHEMA.append(pa.field("event_date", pa.date32()))

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema, **_WRITE_OPTIONS)
        return self._writer

    def write(self, day: dt.date, table: pa.Table) -> None:
        if not table.num_rows:  # a slice without events would only add an empty row group
            return
        dated = table.append_column("event_date", pa.repeat(pa.scalar(day, pa.date32()), table.num_rows))
        self._open().write_table(dated, row_group_size=_ROW_GROUP)
        self.rows += table.num_rows

    def close(self) -> None:
        # No event at all: still a valid, empty file with the schema.
        self._open().close()


# --- The API's exports ------------------------------------------------------------------------------


def parse_range(
    raw_from: str | None, raw_to: str | None, max_days: int, where: str = "query"
) -> tuple[dt.date, dt.date]:
    """Two ISO dates, ``from <= to``, at most ``max_days`` days inclusive; else ``BadRange`` (422) whose
    details name ``{where}.from`` / ``{where}.to``."""
    fields = (f"{where}.from", f"{where}.to")
    missing = [f for f, raw in zip(fields, (raw_from, raw_to), strict=True) if not raw]
    if missing:
        raise BadRange(
            "Both 'from' and 'to' are required (YYYY-MM-DD).",
            details=[problem(f, "is required (YYYY-MM-DD)") for f in missing],
        )
    try:
        start, end = dt.date.fromisoformat(raw_from or ""), dt.date.fromisoformat(raw_to or "")
    except (TypeError, ValueError) as exc:
        raise BadRange(
            "'from' and 'to' must be dates (YYYY-MM-DD).",
            details=[problem(f, "must be a date (YYYY-MM-DD)") for f in fields],
        ) from exc
    if end < start:
        raise BadRange("'to' is before 'from'.", details=[problem(fields[1], "must not be before from")])
    if start < EARLIEST_DAY or end > LATEST_DAY:
        # Day arithmetic past 9999-12-31 overflows Python's date (a 500 otherwise).
        raise BadRange(
            f"Dates must lie between {EARLIEST_DAY} and {LATEST_DAY}.",
            details=[problem(f, f"must lie between {EARLIEST_DAY} and {LATEST_DAY}") for f in fields],
        )
    if (end - start).days + 1 > max_days:
        raise BadRange(
            f"The range is limited to {max_days} days.",
            details=[problem(fields[1], f"makes the range longer than {max_days} days")],
        )
    return start, end


def export_file_path(data_dir: Path, export_id: uuid.UUID) -> Path:
    """Where the file of an API export lives."""
    return data_dir / "exports" / f"{export_id}.parquet"


async def create_export(
    conn: asyncpg.Connection, user: AuthUser, raw_from: str | None, raw_to: str | None
) -> asyncpg.Record:
    """Validate and record a pending export; the caller starts ``run_export`` after commit."""
    start, end = parse_range(raw_from, raw_to, MAX_EXPORT_DAYS, where="body")
    if await repo.count_unfinished_exports(conn, user.user_id) >= MAX_UNFINISHED_PER_USER:
        raise TooManyExports(
            f"At most {MAX_UNFINISHED_PER_USER} exports may be pending or running at once.", retry_after=30
        )
    return await repo.insert_export(conn, uuid.uuid4(), user.user_id, start, end)


async def list_exports(
    conn: asyncpg.Connection, owner: uuid.UUID | None, cursor: str | None, limit: int
) -> Page[ExportOut]:
    """Exports newest first (``owner``: only that user's; None: everyone's, for admins)."""
    after = decode_cursor(cursor, tuple[dt.datetime, uuid.UUID])
    rows = await repo.list_exports(conn, owner, after, limit + 1)
    return make_page([export_out(r) for r in rows], limit, lambda e: (naive(e.created_at), e.id))


async def get_export(
    conn: asyncpg.Connection, export_id: uuid.UUID, owner: uuid.UUID | None = None
) -> asyncpg.Record:
    """An export by id (with ``owner``: only that user's, else ``ExportNotFound``, as for an unknown id);
    one whose process died mid-way is reported (and recorded) as failed."""
    row = await repo.get_export(conn, export_id, owner)
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
        await events.emit(conn, "export.failed", {"export_id": export_id, "error": "interrupted"})
        row = await repo.get_export(conn, export_id)
    assert row is not None
    return row


async def download_path(
    conn: asyncpg.Connection, data_dir: Path, export_id: uuid.UUID, owner: uuid.UUID | None = None
) -> tuple[Path, asyncpg.Record]:
    """The finished file of an export (``owner`` as for ``get_export``), or ``ExportNotReady`` (409)."""
    row = await get_export(conn, export_id, owner)
    path = export_file_path(data_dir, export_id)
    if row["status"] != "done" or not path.exists():
        raise ExportNotReady(f"The export is {row['status']}; only a finished export can be downloaded.")
    return path, row


async def claim_export(conn: asyncpg.Connection, export_id: uuid.UUID) -> asyncpg.Record | None:
    """Mark a pending export running; None if it is not pending (another process took it, or it is gone)."""
    row = await repo.get_export(conn, export_id)
    if row is None or row["status"] != "pending":
        return None
    now = utcnow()
    await repo.update_export(conn, export_id, status="running", started_at=now, heartbeat_at=now)
    return row


async def record_progress(conn: asyncpg.Connection, export_id: uuid.UUID, rows: int) -> None:
    """The export's heartbeat: rows written so far (a stale heartbeat marks a dead export failed)."""
    await repo.update_export(conn, export_id, heartbeat_at=utcnow(), rows=rows)


async def finish_export(conn: asyncpg.Connection, export_id: uuid.UUID, rows: int, size: int) -> None:
    """Mark the export done with its row count and file size in bytes."""
    await repo.update_export(conn, export_id, status="done", rows=rows, bytes=size, finished_at=utcnow())


async def record_failure(conn: asyncpg.Connection, export_id: uuid.UUID, exc: Exception) -> None:
    """Mark the export failed with the error."""
    await repo.update_export(
        conn, export_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=utcnow()
    )


async def write_export_file(
    url: str, path: Path, start: dt.date, end: dt.date, on_slice: Callable[[int], Awaitable[None]]
) -> tuple[int, int]:
    """Write the export's file (through a temporary beside it), reading the database at ``url``; calls
    ``on_slice`` with the rows written so far after every slice. Returns (rows, bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    writer = _FileWriter(tmp)
    tables = slice_tables(url, start, end)
    try:
        while (item := await asyncio.to_thread(next, tables, None)) is not None:
            await asyncio.to_thread(writer.write, *item)
            await on_slice(writer.rows)
        await asyncio.to_thread(writer.close)
    finally:
        await asyncio.to_thread(tables.close)
    os.replace(tmp, path)
    return writer.rows, (await asyncio.to_thread(path.stat)).st_size


async def expire_exports(conn: asyncpg.Connection, data_dir: Path, ttl: dt.timedelta = EXPORT_TTL) -> int:
    """Delete the files of exports finished more than ``ttl`` ago and mark them expired."""
    expired = await repo.expire_exports(conn, utcnow() - ttl)
    for export_id in expired:
        for path in (
            export_file_path(data_dir, export_id),
            export_file_path(data_dir, export_id).with_suffix(".parquet.tmp"),
        ):
            path.unlink(missing_ok=True)
    return len(expired)
