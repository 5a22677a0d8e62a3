"""Read bounds are inlined as timestamp literals (so that the ADBC driver streams through COPY)."""

from __future__ import annotations

import datetime as dt

from aggregation import source


def test_bounds_become_naive_utc_timestamp_literals() -> None:
    naive = dt.datetime(2026, 11, 10, 6)
    aware = dt.datetime(2026, 11, 10, 13, 30, 0, 250, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    sql = source._bounded('SELECT 1 WHERE "timestamp" >= {start} AND "timestamp" < {end}', naive, aware)
    assert sql == (
        "SELECT 1 WHERE \"timestamp\" >= TIMESTAMP '2026-11-10 06:00:00' "
        "AND \"timestamp\" < TIMESTAMP '2026-11-10 12:30:00.000250'"
    )
    assert source._EXPORT_EVENTS_SQL.count("{start}") == source.ROLLUP_SQL.count("{end}") == 1
