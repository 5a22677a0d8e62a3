"""Reads of raw events into Polars frames (for the rollups), one bounded time range at a time.

Synchronous, like the ADBC driver: callers run them in a worker thread. The statements and their bounds are
``aggregation.source``'s.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from aggregation import source
from aggregation.memory import release_memory

__all__ = ["read_identities", "read_rollup_events"]


def _read_slice(conn: Any, sql: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    table = source.read_arrow(conn, sql, start, end)
    # Dropping the driver's per-field metadata keeps Polars from carrying it into every derived frame.
    frame = pl.from_arrow(table.replace_schema_metadata(None), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _read(conn: Any, sql: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    parts = []
    lo = start
    while lo < end:
        hi = min(end, lo + source.SLICE)
        parts.append(_read_slice(conn, sql, lo, hi))
        release_memory()
        lo = hi
    if len(parts) == 1:
        return parts[0]
    return pl.concat(parts, rechunk=False)


def read_rollup_events(conn: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The columns the rollups need, for events with ``start <= timestamp < end``."""
    return _read(conn, source.ROLLUP_SQL, start, end)


def read_identities(conn: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Only the identity columns (to rebuild a day's set of active people)."""
    return _read(conn, source.IDENTITY_SQL, start, end)
