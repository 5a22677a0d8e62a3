"""Reads of raw events through ADBC (binary COPY out into Arrow), one bounded time range at a time.

These functions are synchronous (the ADBC driver is); callers run them in a worker thread. Each query is
bounded by ``timestamp`` so that PostgreSQL prunes to one monthly partition and memory stays proportional
to one period, never to the requested range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import polars as pl

from aggregation.memory import release_memory

__all__ = [
    "adbc",
    "connect",
    "read_export_events",
    "read_export_properties",
    "read_identities",
    "read_rollup_events",
]

_RANGE = '"timestamp" >= $1 AND "timestamp" < $2'

_ROLLUP_SQL = f"""
SELECT "timestamp", created_at, event_name, event_category, user_id, external_user_id, anonymous_id,
       device_id, session_id
FROM analytics_events WHERE {_RANGE}
"""
_IDENTITY_SQL = f"SELECT user_id, external_user_id, anonymous_id FROM analytics_events WHERE {_RANGE}"
_EXPORT_EVENTS_SQL = f"""
SELECT event_id, user_id, event_name, event_category, device_id, session_id, ip_address, user_agent,
       "timestamp", created_at, received_at, source_id, message_id, external_user_id, anonymous_id
FROM analytics_events WHERE {_RANGE}
"""
_EXPORT_PROPERTIES_SQL = (
    f"SELECT event_id, property_name, property_value FROM event_properties WHERE {_RANGE}"
)


def open_connection(url: str) -> Any:
    """An ADBC connection to the database of ``url`` (a libpq URL, the same one asyncpg uses)."""
    return adbc.connect(url)


@contextmanager
def connect(url: str) -> Iterator[Any]:
    """``open_connection`` as a context manager that closes it."""
    conn = open_connection(url)
    try:
        yield conn
    finally:
        conn.close()


# A day is fetched in slices of this length: the driver's transient buffers (glibc heap, returned after
# each slice) then stay a quarter of a day's size, at no cost in speed (measured: docs in README).
SLICE = dt.timedelta(hours=6)


def _read_slice(conn: Any, sql: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, parameters=(start, end))
        table = cur.fetch_arrow_table()
    # Dropping the driver's per-field metadata keeps Polars from carrying it into every derived frame.
    frame = pl.from_arrow(table.replace_schema_metadata(None), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _read(conn: Any, sql: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    parts = []
    lo = start
    while lo < end:
        hi = min(end, lo + SLICE)
        parts.append(_read_slice(conn, sql, lo, hi))
        release_memory()
        lo = hi
    if len(parts) == 1:
        return parts[0]
    return pl.concat(parts, rechunk=False)


def read_rollup_events(conn: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The columns the rollups need, for events with ``start <= timestamp < end``."""
    return _read(conn, _ROLLUP_SQL, start, end)


def read_identities(conn: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Only the identity columns (to rebuild a day's set of active people)."""
    return _read(conn, _IDENTITY_SQL, start, end)


def read_export_events(conn: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Every event column, for export."""
    return _read(conn, _EXPORT_EVENTS_SQL, start, end)


def read_export_properties(conn: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The properties of the events in the range (they carry their event's timestamp)."""
    return _read(conn, _EXPORT_PROPERTIES_SQL, start, end)
