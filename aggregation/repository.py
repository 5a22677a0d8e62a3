"""SQL of the aggregation domain (asyncpg). Never commits: callers own the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel import events

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "Fingerprint",
    "LedgerRow",
    "day_fingerprints",
    "finalise_day",
    "finalised_days",
    "hour_fingerprints",
    "ledger_rows",
    "load_people_sets",
    "prune_people_sets",
    "query_active_users",
    "query_event_rollups",
    "query_experiment_daily",
    "record_ok_runs",
    "record_run",
    "replace_active_users",
    "replace_daily",
    "replace_experiment_daily",
    "replace_hourly",
    "replace_people_set",
    "retry_periods",
]

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC (naive) at the start of ``day``."""
    return dt.datetime.combine(day, dt.time())


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a period's raw events looked like: how many, and the newest ``created_at``."""

    events: int
    max_created_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """The last recorded run of a (job, period)."""

    status: str
    fingerprint: Fingerprint
    finished_at: dt.datetime


# --- Raw-data watermarks -------------------------------------------------------------------------


async def _fingerprints(
    conn: asyncpg.Connection, unit: str, start: dt.datetime, end: dt.datetime
) -> dict[dt.datetime, Fingerprint]:
    rows = await conn.fetch(
        f"""SELECT date_trunc('{unit}', "timestamp") AS period, count(*) AS n, max(created_at) AS newest
            FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1""",
        start,
        end,
    )
    return {r["period"]: Fingerprint(r["n"], r["newest"]) for r in rows}


async def day_fingerprints(
    conn: asyncpg.Connection, start: dt.date, end: dt.date
) -> dict[dt.date, Fingerprint]:
    """Per-day watermark of raw events for days ``start <= day < end``."""
    raw = await _fingerprints(conn, "day", day_start(start), day_start(end))
    return {k.date(): v for k, v in raw.items()}


async def hour_fingerprints(
    conn: asyncpg.Connection, start: dt.datetime, end: dt.datetime
) -> dict[dt.datetime, Fingerprint]:
    """Per-hour watermark of raw events for ``start <= hour < end``."""
    return await _fingerprints(conn, "hour", start, end)


# --- Run ledger ----------------------------------------------------------------------------------


async def ledger_rows(
    conn: asyncpg.Connection, job: str, start: dt.datetime, end: dt.datetime
) -> dict[dt.datetime, LedgerRow]:
    """The ledger rows of ``job`` for periods in ``[start, end)``."""
    rows = await conn.fetch(
        """SELECT period, status, source_events, source_max_created_at, finished_at
           FROM aggregation_runs WHERE job = $1 AND period >= $2 AND period < $3""",
        job,
        start,
        end,
    )
    return {
        r["period"]: LedgerRow(
            r["status"], Fingerprint(r["source_events"] or 0, r["source_max_created_at"]), r["finished_at"]
        )
        for r in rows
    }


async def retry_periods(conn: asyncpg.Connection, job: str, before: dt.datetime) -> list[dt.datetime]:
    """Periods of ``job`` whose last run failed (any age), so a failure is retried on the next run."""
    rows = await conn.fetch(
        "SELECT period FROM aggregation_runs WHERE job = $1 AND status <> 'ok' AND period < $2 ORDER BY 1",
        job,
        before,
    )
    return [r["period"] for r in rows]


_RECORD_RUN = """INSERT INTO aggregation_runs AS r (job, period, status, rows, source_events, source_max_created_at,
                                       attempts, started_at, finished_at, error)
    VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9)
    ON CONFLICT (job, period) DO UPDATE SET
        status = EXCLUDED.status, rows = EXCLUDED.rows,
        source_events = coalesce(EXCLUDED.source_events, r.source_events),
        source_max_created_at = CASE WHEN EXCLUDED.source_events IS NULL
                                     THEN r.source_max_created_at
                                     ELSE EXCLUDED.source_max_created_at END,
        attempts = r.attempts + 1, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, error = EXCLUDED.error"""


async def record_run(
    conn: asyncpg.Connection,
    job: str,
    period: dt.datetime,
    *,
    status: str,
    rows: int,
    fingerprint: Fingerprint | None,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    error: str | None = None,
) -> None:
    """Upsert the ledger row of (job, period); ``attempts`` counts every run that did the work."""
    await conn.execute(
        _RECORD_RUN,
        job,
        period,
        status,
        rows,
        fingerprint.events if fingerprint else None,
        fingerprint.max_created_at if fingerprint else None,
        started_at,
        finished_at,
        error,
    )


async def record_ok_runs(
    conn: asyncpg.Connection,
    job: str,
    runs: Sequence[tuple[dt.datetime, Fingerprint]],
    at: dt.datetime,
) -> None:
    """Record successful runs of several periods of ``job`` in one round trip."""
    await conn.executemany(
        _RECORD_RUN,
        [(job, period, "ok", 0, fp.events, fp.max_created_at, at, at, None) for period, fp in runs],
    )


# --- Rollup writes: each replaces a whole period ------------------------------------------------


async def _replace(
    conn: asyncpg.Connection,
    table: str,
    key: str,
    start: Any,
    end: Any,
    columns: Sequence[str],
    records: Sequence[tuple[Any, ...]],
) -> None:
    await conn.execute(f"DELETE FROM {table} WHERE {key} >= $1 AND {key} < $2", start, end)
    if records:
        await conn.copy_records_to_table(table, records=records, columns=list(columns))


_ROLLUP_COLUMNS = ("event_name", "event_category", "events", "users", "devices", "sessions")


async def replace_hourly(
    conn: asyncpg.Connection, start: dt.datetime, end: dt.datetime, records: Sequence[tuple[Any, ...]]
) -> None:
    """Replace the hourly rollup rows of hours in ``[start, end)`` (records in ``ROLLUP_SCHEMA`` order)."""
    await _replace(conn, "event_rollups_hourly", "period", start, end, ("period", *_ROLLUP_COLUMNS), records)


async def replace_daily(conn: asyncpg.Connection, day: dt.date, records: Sequence[tuple[Any, ...]]) -> None:
    """Replace the daily rollup rows of ``day``."""
    await _replace(conn, "event_rollups_daily", "day", day, day + DAY, ("day", *_ROLLUP_COLUMNS), records)


async def replace_active_users(conn: asyncpg.Connection, day: dt.date, dau: int, wau: int, mau: int) -> None:
    """Upsert the active-user counts of ``day``."""
    await conn.execute(
        """INSERT INTO active_users_daily (day, dau, wau, mau) VALUES ($1, $2, $3, $4)
           ON CONFLICT (day) DO UPDATE SET dau = EXCLUDED.dau, wau = EXCLUDED.wau, mau = EXCLUDED.mau,
                                           computed_at = CURRENT_TIMESTAMP""",
        day,
        dau,
        wau,
        mau,
    )


async def replace_people_set(conn: asyncpg.Connection, day: dt.date, people: int, members: bytes) -> None:
    """Upsert the stored set of people active on ``day``."""
    await conn.execute(
        """INSERT INTO active_user_sets (day, people, members) VALUES ($1, $2, $3)
           ON CONFLICT (day) DO UPDATE SET people = EXCLUDED.people, members = EXCLUDED.members,
                                           computed_at = CURRENT_TIMESTAMP""",
        day,
        people,
        members,
    )


async def load_people_sets(conn: asyncpg.Connection, days: Sequence[dt.date]) -> dict[dt.date, bytes]:
    """The stored sets of the given days (days without one are absent)."""
    rows = await conn.fetch(
        "SELECT day, members FROM active_user_sets WHERE day = ANY($1::date[])", list(days)
    )
    return {r["day"]: r["members"] for r in rows}


async def prune_people_sets(conn: asyncpg.Connection) -> int:
    """Delete the sets of finalised days whose raw events are gone: they can never be needed again."""
    status: str = await conn.execute(
        """DELETE FROM active_user_sets s USING rollup_finalisations f
           WHERE s.day = f.day AND NOT EXISTS (
               SELECT 1 FROM analytics_events e
               WHERE e."timestamp" >= s.day::timestamp AND e."timestamp" < s.day::timestamp + interval '1 day')"""
    )
    return int(status.split()[-1])


# --- Retention contract -------------------------------------------------------------------------


async def finalised_days(conn: asyncpg.Connection, start: dt.date, end: dt.date) -> set[dt.date]:
    """Finalised days in ``[start, end]`` (inclusive)."""
    rows = await conn.fetch("SELECT day FROM rollup_finalisations WHERE day BETWEEN $1 AND $2", start, end)
    return {r["day"] for r in rows}


async def finalise_day(conn: asyncpg.Connection, day: dt.date) -> tuple[int, int, bool]:
    """Compare raw and rolled-up event counts of ``day``; mark it finalised when they agree."""
    start = day_start(day)
    raw: int = await conn.fetchval(
        'SELECT count(*) FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2',
        start,
        start + DAY,
    )
    rolled: int = await conn.fetchval(
        "SELECT coalesce(sum(events), 0)::bigint FROM event_rollups_daily WHERE day = $1", day
    )
    if raw != rolled:
        return raw, rolled, False
    status: str = await conn.execute(
        """INSERT INTO rollup_finalisations (day, raw_events, rollup_events) VALUES ($1, $2, $3)
           ON CONFLICT (day) DO NOTHING""",
        day,
        raw,
        rolled,
    )
    if status.endswith(" 1"):  # finalised now, not before
        await events.emit(conn, "aggregation.day_finalised", {"day": day})
    return raw, rolled, True


async def replace_experiment_daily(conn: asyncpg.Connection, day: dt.date) -> int:
    """Recompute per test and variant the assignments made and conversions recorded on ``day``."""
    start = day_start(day)
    await conn.execute("DELETE FROM experiment_daily WHERE day = $1", day)
    status: str = await conn.execute(
        """INSERT INTO experiment_daily (test_id, variant_id, day, assigned, converted)
           SELECT test_id, variant_id, $1::date,
                  count(*) FILTER (WHERE assigned_at >= $2 AND assigned_at < $3),
                  count(*) FILTER (WHERE converted AND converted_at >= $2 AND converted_at < $3)
           FROM ab_test_assignments
           WHERE (assigned_at >= $2 AND assigned_at < $3) OR (converted_at >= $2 AND converted_at < $3)
           GROUP BY test_id, variant_id""",
        day,
        start,
        start + DAY,
    )
    return int(status.split()[-1])


# --- Query API -----------------------------------------------------------------------------------


async def query_event_rollups(
    conn: asyncpg.Connection,
    *,
    granularity: str,
    start: dt.date,
    end: dt.date,
    event_name: str | None,
    event_category: str | None,
    after: tuple[Any, str, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Rollup rows for days ``start <= day <= end`` in key order, after the keyset cursor ``after``."""
    lo: dt.date | dt.datetime
    hi: dt.date | dt.datetime
    if granularity == "hour":
        table, key, lo, hi = "event_rollups_hourly", "period", day_start(start), day_start(end) + DAY
    else:
        table, key, lo, hi = "event_rollups_daily", "day", start, end + DAY
    cursor = after or (lo, "", "")
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {key} AS period, event_name, event_category, events, users, devices, sessions
            FROM {table}
            WHERE {key} >= $1 AND {key} < $2
              AND ($3::text IS NULL OR event_name = $3) AND ($4::text IS NULL OR event_category = $4)
              AND (NOT $5 OR ({key}, event_name, event_category) > ($6, $7, $8))
            ORDER BY {key}, event_name, event_category
            LIMIT $9""",
        lo,
        hi,
        event_name,
        event_category,
        after is not None,
        *cursor,
        limit,
    )
    return rows


async def query_active_users(
    conn: asyncpg.Connection, start: dt.date, end: dt.date, after: dt.date | None, limit: int
) -> list[asyncpg.Record]:
    """Active-user rows for ``start <= day <= end`` after the cursor day."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT day, dau, wau, mau FROM active_users_daily
           WHERE day BETWEEN $1 AND $2 AND ($3::date IS NULL OR day > $3)
           ORDER BY day LIMIT $4""",
        start,
        end,
        after,
        limit,
    )
    return rows


async def query_experiment_daily(conn: asyncpg.Connection, test_id: uuid.UUID) -> list[asyncpg.Record]:
    """An experiment's rolled-up days: per variant and UTC day, assignments made and conversions recorded
    that day, in day order (the web app's cumulative chart)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT variant_id, day, assigned, converted FROM experiment_daily
           WHERE test_id = $1 ORDER BY day, variant_id""",
        test_id,
    )
    return rows
