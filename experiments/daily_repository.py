"""SQL of the daily series' cache, ``experiment_daily_results`` (asyncpg; the caller's transaction).

A stored day holds the rows of the results statement as of the end of that day, the hash of the analysis
they were computed for, and a data watermark: ``ingested_through`` and the number of late-data
candidates created after it (``tail_events``, ``tail_links``) when it was set. ``late_counts`` counts the
same now: more than then means data arrived for the day after its rows were computed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

__all__ = [
    "StoredDay",
    "advance",
    "clock",
    "delete_before",
    "delete_for_user",
    "fetch_stored",
    "late_counts",
    "running_with_metrics",
    "save_days",
]

StoredDay = tuple[dt.date, str, list[dict[str, Any]], dt.datetime, dt.datetime, int, int]
"""(day, analysis_hash, sums, computed_at, ingested_through, tail_events, tail_links)."""

# Per day of the event's timestamp (of the linked unit's exposure), how many metric events (identity
# links to the test's units) were created after $2 and after $3, among those created after the earlier
# of the two: events through ix_analytics_events_event_name_created_at_timestamp, links through
# ix_experiment_identity_links_created_at, so the scan is what arrived since the watermark. One statement,
# one snapshot: the two counts agree with each other.
_EVENTS = """
SELECT 'e' AS kind, e."timestamp"::date AS day,
       count(*) FILTER (WHERE e.created_at > $2) AS old, count(*) FILTER (WHERE e.created_at > $3) AS new
FROM analytics_events e
WHERE e.event_name = ANY($1::text[]) AND e.created_at > least($2::timestamp, $3::timestamp)
  AND e."timestamp" < $4
GROUP BY 2
"""
_LINKS = """
UNION ALL
SELECT 'l', a.assigned_at::date,
       count(*) FILTER (WHERE l.created_at > $2), count(*) FILTER (WHERE l.created_at > $3)
FROM experiment_identity_links l
JOIN experiment_unit_assignments a ON a.test_id = $5 AND a.unit_id = l.{side}
WHERE l.created_at > least($2::timestamp, $3::timestamp) AND a.assigned_at < $4
GROUP BY 2
"""
# The side of a link that is the test's unit: an anonymous id, or a Segment userId.
_LINK_SIDE = {"anonymous": "anonymous_id", "external": "external_user_id"}
_LATE = {
    "user": _EVENTS,
    **{unit: _EVENTS + _LINKS.format(side=side) for unit, side in _LINK_SIDE.items()},
}


async def clock(conn: asyncpg.Connection) -> dt.datetime:
    """The transaction's start (the clock of ``created_at``)."""
    now: dt.datetime = await conn.fetchval("SELECT LOCALTIMESTAMP")
    return now


async def late_counts(
    conn: asyncpg.Connection,
    unit: str,
    test_id: uuid.UUID,
    events: Sequence[str],
    old: dt.datetime,
    new: dt.datetime,
    until: dt.datetime,
) -> list[asyncpg.Record]:
    """Rows ``(kind 'e'|'l', day, old, new)``: per day, events named ``events`` with a timestamp before
    ``until`` (links to units of ``test_id`` exposed before ``until``) created after ``old`` and after
    ``new``. The links of a ``user`` test do not count (its events are matched by ``user_id`` alone)."""
    args: list[Any] = [list(events), old, new, until]
    if unit != "user":
        args.append(test_id)
    return list(await conn.fetch(_LATE[unit], *args))


async def fetch_stored(
    conn: asyncpg.Connection, test_id: uuid.UUID, first: dt.date, last: dt.date
) -> list[StoredDay]:
    """The stored days of a test between ``first`` and ``last`` (inclusive), in order."""
    rows = await conn.fetch(
        """SELECT day, analysis_hash, sums, computed_at, ingested_through, tail_events, tail_links
           FROM experiment_daily_results WHERE test_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day""",
        test_id,
        first,
        last,
    )
    return [tuple(r) for r in rows]


async def save_days(
    conn: asyncpg.Connection,
    test_id: uuid.UUID,
    analysis_hash: str,
    watermark: dt.datetime,
    days: Sequence[tuple[dt.date, list[dict[str, Any]], int, int]],
) -> None:
    """Store (replace) days ``(day, sums, tail_events, tail_links)`` computed now with ``watermark``; in
    day order, so two writers cannot deadlock."""
    await conn.executemany(
        """INSERT INTO experiment_daily_results AS d (test_id, day, analysis_hash, sums, computed_at,
               ingested_through, tail_events, tail_links, checked_at)
           VALUES ($1, $2, $3, $4, clock_timestamp()::timestamp, $5, $6, $7, clock_timestamp()::timestamp)
           ON CONFLICT (test_id, day) DO UPDATE SET
               analysis_hash = excluded.analysis_hash, sums = excluded.sums, computed_at = excluded.computed_at,
               ingested_through = excluded.ingested_through, tail_events = excluded.tail_events,
               tail_links = excluded.tail_links, checked_at = excluded.checked_at""",
        [(test_id, d, analysis_hash, sums, watermark, te, tl) for d, sums, te, tl in sorted(days)],
    )


async def advance(
    conn: asyncpg.Connection,
    test_id: uuid.UUID,
    watermark: dt.datetime,
    days: Sequence[tuple[dt.date, int, int]],
) -> None:
    """Days found still valid: their watermark moves to ``watermark`` with the counts after it
    ``(day, tail_events, tail_links)``; ``computed_at`` stays."""
    await conn.executemany(
        """UPDATE experiment_daily_results
           SET ingested_through = $3, tail_events = $4, tail_links = $5, checked_at = clock_timestamp()::timestamp
           WHERE test_id = $1 AND day = $2""",
        [(test_id, d, watermark, te, tl) for d, te, tl in sorted(days)],
    )


async def delete_before(conn: asyncpg.Connection, test_id: uuid.UUID, day: dt.date) -> None:
    """Drop the stored days before ``day`` (no longer in the series' window)."""
    await conn.execute("DELETE FROM experiment_daily_results WHERE test_id = $1 AND day < $2", test_id, day)


async def delete_for_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Before an erasure: drop the stored days of every test the account's assignments or identity links
    reach (its units and events leave those tests' results, which no watermark notices)."""
    status: str = await conn.execute(
        """DELETE FROM experiment_daily_results WHERE test_id IN (
               SELECT a.test_id FROM ab_test_assignments a WHERE a.user_id = $1
               UNION
               SELECT t.test_id FROM ab_tests t
               JOIN experiment_identity_links l ON l.user_id = $1 OR l.external_user_id = $1::text
               WHERE t.unit <> 'user' AND EXISTS (
                   SELECT 1 FROM experiment_unit_assignments a
                   WHERE a.test_id = t.test_id AND a.unit_id IN (l.anonymous_id, l.external_user_id)))""",
        user_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def running_with_metrics(conn: asyncpg.Connection) -> list[str]:
    """Names of the running experiments (active, started, not ended before today) with declared metrics
    or a goal event."""
    rows = await conn.fetch(
        """SELECT t.name FROM ab_tests t
           WHERE t.status = 'active' AND t.start_date <= CURRENT_DATE
             AND (t.end_date IS NULL OR t.end_date >= CURRENT_DATE - 1)
             AND (t.goal_event IS NOT NULL
                  OR EXISTS (SELECT 1 FROM experiment_metric_links m WHERE m.test_id = t.test_id))
           ORDER BY t.name"""
    )
    return [r["name"] for r in rows]
