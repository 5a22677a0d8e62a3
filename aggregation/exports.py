"""Parquet exports of raw events: a hive-partitioned dataset (CLI) or one file (API).

Both stream a quarter of a UTC day at a time (events and their properties read through ADBC as Arrow,
shaped with Arrow and NumPy, appended to the day's file as row groups), so memory holds one slice whatever
the range. Output: zstd Parquet, one row per event with every event column; ids (``event_id``,
``user_id``, ``source_id``) as 16-byte ``FIXED_LEN_BYTE_ARRAY`` with the Parquet ``UUID`` logical type
(DuckDB reads ``UUID``, PyArrow ``arrow.uuid``, Polars 16-byte ``Binary``); timestamps microseconds UTC;
``properties`` one JSON object string of every property of the event (PostHog's convention; ``{}`` when it
has none; values stay strings, as stored). Nothing is converted per event in Python: the driver's ids are
written as they arrive and the JSON is built from the property rows with Arrow compute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aggregation import repository as repo
from aggregation import source
from aggregation.errors import BadRange, ExportNotFound, ExportNotReady, TooManyExports
from aggregation.memory import release_memory
from aggregation.repository import DAY, day_start
from kernel.auth import utcnow

if TYPE_CHECKING:
    import asyncpg

    from kernel.auth import AuthUser
    from kernel.db import Database

__all__ = [
    "EXPORT_SCHEMA",
    "EXPORT_TTL",
    "MAX_EXPORT_DAYS",
    "create_export",
    "expire_exports",
    "export_file_path",
    "export_table",
    "get_export",
    "properties_json",
    "run_export",
    "slice_tables",
    "write_dataset",
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

_UTC_US = pa.timestamp("us", tz="UTC")
# Column order of the export (the API's single file appends ``event_date``).
EXPORT_SCHEMA = pa.schema(
    [
        ("event_id", pa.uuid()),
        ("user_id", pa.uuid()),
        ("event_name", pa.string()),
        ("event_category", pa.string()),
        ("device_id", pa.string()),
        ("session_id", pa.string()),
        ("ip_address", pa.string()),
        ("user_agent", pa.string()),
        ("timestamp", _UTC_US),
        ("created_at", _UTC_US),
        ("received_at", _UTC_US),
        ("source_id", pa.uuid()),
        ("message_id", pa.string()),
        ("external_user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("properties", pa.string()),
    ]
)
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


def _storage(column: pa.ChunkedArray) -> pa.Array:
    """The 16-byte ``fixed_size_binary`` storage of an ``arrow.uuid`` column, as one array."""
    chunks = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in column.chunks]
    if not chunks:
        return pa.array([], pa.binary(16))
    return pa.concat_arrays(chunks)


def _grouped(event_ids: pa.ChunkedArray, properties: pa.Table) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Map offsets per event of ``event_ids`` and the property names and values in that order.

    Each property row finds its event's position by a hash lookup, a stable sort groups the rows by that
    position (keeping each event's own order) and the per-event counts become the offsets. Rows of events
    not in ``event_ids`` are ignored.
    """
    n = len(event_ids)
    position = pc.index_in(_storage(properties["event_id"]), value_set=_storage(event_ids))
    names, values = properties["property_name"], properties["property_value"]
    if position.null_count:
        known = position.is_valid()
        position, names, values = position.filter(known), names.filter(known), values.filter(known)
    at = position.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    order = pa.array(np.argsort(at, kind="stable"))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(at, minlength=n), out=offsets[1:])
    return offsets, names.take(order).combine_chunks(), values.take(order).combine_chunks()


# JSON string escapes: backslash and quote by substring replacement (vectorised); the other control
# characters, rare in property text, per value in Python.
_CONTROL = re.compile(r"[\x00-\x1f]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _json_strings(values: pa.Array) -> pa.Array:
    """Each string as a JSON string literal (quoted and escaped)."""
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    has_control = pc.match_substring_regex(escaped, "[\\x00-\\x1f]")
    if pc.any(has_control).as_py():
        texts = escaped.to_pylist()
        for i in np.flatnonzero(has_control.to_numpy(zero_copy_only=False)):
            texts[i] = _CONTROL.sub(_escape_control, texts[i])
        escaped = pa.array(texts, pa.string())
    return pc.binary_join_element_wise('"', escaped, '"', "")


def properties_json(event_ids: pa.ChunkedArray, properties: pa.Table) -> pa.Array:
    """One JSON object string per event of ``event_ids`` with its rows of ``properties``, in their order.

    PostHog's convention: ``{"name": "value", ...}``, values strings as stored, ``{}`` for an event without
    properties. ``properties`` has columns ``event_id, property_name, property_value``. Built with Arrow
    compute over all the slice's properties at once (escape, pair, join per event), never per event.
    """
    offsets, names, values = _grouped(event_ids, properties)
    pairs = pc.binary_join_element_wise(_json_strings(names), _json_strings(values), ":")
    per_event = pa.ListArray.from_arrays(pa.array(offsets), pairs)
    return pc.binary_join_element_wise("{", pc.binary_join(per_event, ","), "}", "")


def export_table(events: pa.Table, properties: pa.Table) -> pa.Table:
    """Events as read by ``source.read_export_events`` plus their properties, in ``EXPORT_SCHEMA``.

    Timestamps are labelled UTC (the stored values are UTC) and the driver's field metadata is dropped;
    no column is copied but the properties.
    """
    columns: list[pa.ChunkedArray | pa.Array] = []
    for field in EXPORT_SCHEMA:
        if field.name == "properties":
            columns.append(properties_json(events["event_id"], properties))
        else:
            columns.append(events[field.name].cast(field.type))
    return pa.Table.from_arrays(columns, schema=EXPORT_SCHEMA)


def _slices(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    bounds = []
    for i in range((end - start).days + 1):
        day = start + dt.timedelta(days=i)
        lo = day_start(day)
        while lo < day_start(day) + DAY:
            bounds.append((day, lo, lo + source.SLICE))
            lo += source.SLICE
    return bounds


def slice_tables(url: str, start: dt.date, end: dt.date) -> Generator[tuple[dt.date, pa.Table], None, None]:
    """Export rows of the days ``start ..= end``, in time order, one slice (a quarter day) at a time.

    Every day yields at least one (possibly empty) table. While the caller writes one slice, the next one
    is read: its events and its properties at the same time, each on its own connection and worker thread
    (the driver, Arrow and NumPy release the GIL), so PostgreSQL's two backends, the driver's decoding and
    the Parquet encoding use both cores. Memory holds about two slices whatever the range or the size of a
    day. Properties carry their event's timestamp, so one time slice holds whole events with all their
    properties.
    """
    bounds = _slices(start, end)
    # Exiting the pool waits for the reads in flight (at most one slice) before the connections close.
    with (
        source.connect(url) as events_conn,
        source.connect(url) as props_conn,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="export-read") as pool,
    ):

        def read(lo: dt.datetime, hi: dt.datetime) -> tuple[Future[pa.Table], Future[pa.Table]]:
            return (
                pool.submit(source.read_export_events, events_conn, lo, hi),
                pool.submit(source.read_export_properties, props_conn, lo, hi),
            )

        ahead = read(*bounds[0][1:])
        for i, (day, _, _) in enumerate(bounds):
            events, props = ahead[0].result(), ahead[1].result()
            if i + 1 < len(bounds):
                ahead = read(*bounds[i + 1][1:])
            yield day, export_table(events, props)
            del events, props
            release_memory()


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
    if start < EARLIEST_DAY or end > LATEST_DAY:
        # Day arithmetic past 9999-12-31 overflows Python's date (a 500 otherwise).
        raise BadRange(f"Dates must lie between {EARLIEST_DAY} and {LATEST_DAY}.")
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
            tables = slice_tables(db.url, row["date_from"], row["date_to"])
            try:
                while (item := await asyncio.to_thread(next, tables, None)) is not None:
                    await asyncio.to_thread(writer.write, *item)
                    async with db.transaction() as conn:
                        await repo.update_export(conn, export_id, heartbeat_at=utcnow(), rows=writer.rows)
                await asyncio.to_thread(writer.close)
            finally:
                await asyncio.to_thread(tables.close)
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
