"""Reads of raw events through ADBC (binary COPY out into Arrow), one bounded time range at a time.

Polars frames of these reads are ``aggregation.frames``'s, so that exports never load Polars.
These functions are synchronous (the ADBC driver is); callers run them in a worker thread. Each query is
bounded by ``timestamp`` so that PostgreSQL prunes to one monthly partition and memory stays proportional
to one period, never to the requested range. The bounds are written into the SQL as timestamp literals
rather than bound as parameters: the ADBC driver streams only a statement without parameters through
``COPY ... TO STDOUT (FORMAT binary)``; one with parameters is executed as a prepared statement whose whole
result sits in libpq before it is converted row by row (measured 1.5-1.9x slower for the export's reads).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

__all__ = [
    "IDENTITY_SQL",
    "ROLLUP_SQL",
    "SLICE",
    "connect",
    "read_arrow",
    "read_export_events",
    "read_export_properties",
]

# Filled in by ``_bounded`` (str.format): none of the statements below has another brace.
_RANGE = '"timestamp" >= {start} AND "timestamp" < {end}'

ROLLUP_SQL = f"""
SELECT "timestamp", created_at, event_name, event_category, user_id, external_user_id, anonymous_id,
       device_id, session_id
FROM analytics_events WHERE {_RANGE}
"""
IDENTITY_SQL = f"SELECT user_id, external_user_id, anonymous_id FROM analytics_events WHERE {_RANGE}"
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
    # Imported on first use, not with the domain: the ADBC DB-API module loads Polars (one of its optional
    # backends), and Polars must load only after the app or job configured its allocator (``memory``).
    import adbc_driver_postgresql.dbapi as adbc

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


def _timestamp_literal(value: dt.datetime) -> str:
    # The columns are naive UTC; an aware bound is converted, never compared in the session's time zone.
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    # isoformat() of a datetime is digits, '-', ':', '.' and the space: nothing that could escape the quotes.
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def _bounded(sql: str, start: dt.datetime, end: dt.datetime) -> str:
    return sql.format(start=_timestamp_literal(start), end=_timestamp_literal(end))


def read_arrow(conn: Any, sql: str, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """The rows of ``sql`` (one of this module's statements) for ``start <= timestamp < end``, as Arrow."""
    with conn.cursor() as cur:
        cur.execute(_bounded(sql, start, end))
        table: pa.Table = cur.fetch_arrow_table()
    return table


def read_export_events(conn: Any, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """Every event column as the driver returns it (ids ``arrow.uuid``), in one query: the caller slices.

    Arrow rather than Polars: the export writes Arrow, and a round trip through Polars converted every
    string column twice (to Polars' string views and back).
    """
    return read_arrow(conn, _EXPORT_EVENTS_SQL, start, end)


def read_export_properties(conn: Any, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """``event_id, property_name, property_value`` of the events in the range (they carry their timestamp)."""
    return read_arrow(conn, _EXPORT_PROPERTIES_SQL, start, end)
