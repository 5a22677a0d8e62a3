"""SQL of conversions (asyncpg): the API's explicit conversion and the goal-event job.

experiments is the only writer of ``ab_test_assignments.converted``/``converted_at``; the rule is in
docs/conversions.md. ``analytics_events`` belongs to ingest and is only read here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import NamedTuple, TypeAlias

import asyncpg

__all__ = [
    "GoalScan",
    "convert",
    "convert_goal_events",
    "convert_sql",
    "convertible_tests",
    "save_watermarks",
]

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


def convert_sql(table: str, key: str) -> str:
    """The explicit conversion of the assignment (test $1, ``key`` $2) in ``table``: first conversion wins.

    The UPDATE only touches an unconverted row. ``converted_at`` of the existing row (old_at) is read
    from the statement's snapshot; a conversion committed concurrently shows as assigned with neither
    timestamp, and the caller re-reads. Users' assignments and other units' share it.
    """
    return f"""
WITH upd AS (
    UPDATE {table} SET converted = true, converted_at = CURRENT_TIMESTAMP
    WHERE test_id = $1 AND {key} = $2 AND NOT converted
    RETURNING converted_at
)
SELECT a.variant_id, a.variant_id IS NOT NULL AS assigned, (SELECT converted_at FROM upd) AS new_at,
       a.converted_at AS old_at
FROM (SELECT 1) AS one
LEFT JOIN {table} a ON a.test_id = $1 AND a.{key} = $2
"""


_CONVERT = convert_sql("ab_test_assignments", "user_id")


async def convert(db: Executor, test_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record:
    """Mark the user's assignment converted unless it already is (see ``_CONVERT``)."""
    return await db.fetchrow(_CONVERT, test_id, user_id)


class GoalScan(NamedTuple):
    """What one test's run of the goal-event job reads."""

    test_id: uuid.UUID
    goal_event: str
    # Events ingested (created_at) at or after this; None: all of them (first run, or a changed goal).
    ingested_since: dt.datetime | None
    # Event time bounds: the test's earliest assignment, and the end of its end_date (None: open).
    earliest: dt.datetime
    until: dt.datetime | None
    # The test's unit: ``user`` tests are read by ``convert_goal_events`` below, the others by
    # ``identity_repository.convert_unit_goal_events``.
    unit: str = "user"


# Tests that still convert, with their watermark (only if it was read for the current goal) and their
# earliest assignment: min() over (test_id, assigned_at) is one index probe, not a scan.
_CONVERTIBLE = """
SELECT t.test_id, t.goal_event, t.end_date, t.unit,
       CASE WHEN w.goal_event = t.goal_event THEN w.ingested_through END AS ingested_through,
       CASE WHEN t.unit = 'user'
            THEN (SELECT min(a.assigned_at) FROM ab_test_assignments a WHERE a.test_id = t.test_id)
            ELSE (SELECT min(a.assigned_at) FROM experiment_unit_assignments a WHERE a.test_id = t.test_id)
       END AS earliest
FROM ab_tests t
LEFT JOIN experiment_conversion_watermarks w ON w.test_id = t.test_id
WHERE t.goal_event IS NOT NULL AND t.status IN ('active', 'paused')
ORDER BY t.test_id
"""


async def convertible_tests(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Active and paused tests with a goal event: goal, end date, watermark, earliest assignment."""
    return list(await conn.fetch(_CONVERTIBLE))


# Per test (a LATERAL, so each test's bounds reach its index scan and prune partitions at run time):
# goal events ingested since the watermark, at or after the test's earliest assignment and before the
# end of its end date. MATERIALIZED: the plan must start from the new events, never from a test's
# assignments probing each user's events (the whole history). Each assignment takes the earliest such event at or after its own assigned_at,
# unless it already holds an earlier conversion (the WHERE is rechecked on a row the API converted
# concurrently, so the earlier time wins either way).
_CONVERT_GOALS = """
WITH scan AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamp[], $4::timestamp[], $5::timestamp[])
        AS s(test_id, goal_event, since, earliest, until)
), ev AS MATERIALIZED (
    SELECT s.test_id, e.user_id, e."timestamp"
    FROM scan s
    CROSS JOIN LATERAL (
        SELECT ev.user_id, ev."timestamp" FROM analytics_events ev
        WHERE ev.event_name = s.goal_event
          AND ev.created_at >= coalesce(s.since, '-infinity'::timestamp)
          AND ev."timestamp" >= s.earliest
          AND ev."timestamp" < coalesce(s.until, 'infinity'::timestamp)
          AND ev.user_id IS NOT NULL
    ) e
), firsts AS (
    SELECT a.assignment_id, min(ev."timestamp") AS first_at
    FROM ev
    CROSS JOIN LATERAL (
        -- One probe of (test_id, user_id) per event (at most one row: LIMIT 1 keeps it a probe,
        -- where a join could hash every assignment of the tests).
        SELECT a.assignment_id, a.assigned_at FROM ab_test_assignments a
        WHERE a.test_id = ev.test_id AND a.user_id = ev.user_id
        LIMIT 1
    ) a
    WHERE ev."timestamp" >= a.assigned_at
    GROUP BY a.assignment_id
)
UPDATE ab_test_assignments a SET converted = true, converted_at = f.first_at
FROM firsts f
WHERE a.assignment_id = f.assignment_id AND (NOT a.converted OR a.converted_at > f.first_at)
"""


async def convert_goal_events(conn: asyncpg.Connection, scans: Sequence[GoalScan]) -> int:
    """Apply the goal-event rule to the events each scan reads; the number of assignments changed."""
    if not scans:
        return 0
    status: str = await conn.execute(
        _CONVERT_GOALS,
        [s.test_id for s in scans],
        [s.goal_event for s in scans],
        [s.ingested_since for s in scans],
        [s.earliest for s in scans],
        [s.until for s in scans],
    )
    return int(status.split()[-1])


async def save_watermarks(conn: asyncpg.Connection, tests: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Record that ``tests`` (test_id, goal_event) were read up to this transaction's start time.

    ``LOCALTIMESTAMP`` is the same clock, in the same (UTC) zone, as ``analytics_events.created_at``'s
    default, which ingest leaves to the flush transaction (kernel.db sessions run in UTC).
    """
    await conn.execute(
        """INSERT INTO experiment_conversion_watermarks (test_id, goal_event, ingested_through, updated_at)
           SELECT t, g, LOCALTIMESTAMP, LOCALTIMESTAMP FROM unnest($1::uuid[], $2::text[]) AS x(t, g)
           ON CONFLICT (test_id) DO UPDATE
           SET goal_event = excluded.goal_event, ingested_through = excluded.ingested_through,
               updated_at = excluded.updated_at""",
        [t[0] for t in tests],
        [t[1] for t in tests],
    )
