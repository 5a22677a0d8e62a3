"""SQL of identity stitching and of goal-event conversions for anonymous and external units (asyncpg).

Ingest stores ``identify`` and ``alias`` calls as events and knows nothing of experiments. The
experiments job reads the ones ingested since its watermark (``experiment_watermarks``) and records
each (anonymous id, Segment userId) pair in ``experiment_identity_links``; ``analytics_events`` and
``event_properties`` belong to ingest and are only read here (docs/experiment-units.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from experiments.conversion_repository import GoalScan
from experiments.unit_repository import unit_event_join_sql

__all__ = ["LINK_JOB", "convert_unit_goal_events", "link_identities", "link_watermark", "save_link_watermark"]

LINK_JOB = "identity_links"

# identify (userId + anonymousId) and alias (previousId -> userId; its anonymousId too, if any) ingested
# since $1, read through ix_analytics_events_event_name_created_at_timestamp. An alias's previousId is
# its `$previousId` property. A pair seen again keeps its earliest event time (so the result does not
# depend on the order events arrive in) and gains the account if a later event has it. RETURNING
# gives the pairs that are new or changed: their ids' earlier events may now count for a unit.
_LINK = """
WITH ev AS MATERIALIZED (
    SELECT e.event_id, e."timestamp", e.event_name, e.anonymous_id, e.external_user_id, e.user_id
    FROM analytics_events e
    WHERE e.event_name IN ('identify', 'alias') AND e.created_at >= coalesce($1, '-infinity'::timestamp)
      AND e.external_user_id IS NOT NULL
), pairs AS (
    SELECT ev.anonymous_id AS anon, ev.external_user_id AS ext, ev.user_id, ev.event_name AS source, ev."timestamp"
    FROM ev WHERE ev.anonymous_id IS NOT NULL
    UNION ALL
    SELECT p.property_value, ev.external_user_id, ev.user_id, 'alias', ev."timestamp"
    FROM ev JOIN event_properties p
      ON p.event_id = ev.event_id AND p."timestamp" = ev."timestamp" AND p.property_name = $2
    WHERE ev.event_name = 'alias'
), firsts AS (
    SELECT DISTINCT ON (anon, ext) anon, ext, user_id, source, "timestamp"
    FROM pairs
    WHERE anon <> ext AND length(anon) BETWEEN 1 AND 255
    ORDER BY anon, ext, "timestamp", source
)
INSERT INTO experiment_identity_links AS l (anonymous_id, external_user_id, user_id, source, linked_at)
SELECT anon, ext, user_id, source, "timestamp" FROM firsts
ORDER BY anon, ext
ON CONFLICT (anonymous_id, external_user_id) DO UPDATE
SET linked_at = least(l.linked_at, excluded.linked_at),
    source = CASE WHEN excluded.linked_at < l.linked_at THEN excluded.source ELSE l.source END,
    user_id = coalesce(l.user_id, excluded.user_id)
WHERE excluded.linked_at < l.linked_at OR (l.user_id IS NULL AND excluded.user_id IS NOT NULL)
RETURNING l.anonymous_id, l.external_user_id
"""


async def link_watermark(conn: asyncpg.Connection) -> dt.datetime | None:
    """How far the link job has read (``analytics_events.created_at``); None before its first run."""
    since: dt.datetime | None = await conn.fetchval(
        "SELECT ingested_through FROM experiment_watermarks WHERE job = $1", LINK_JOB
    )
    return since


async def link_identities(conn: asyncpg.Connection, since: dt.datetime | None) -> list[asyncpg.Record]:
    """Record the links of identify/alias events ingested since ``since``; the new or changed pairs."""
    return list(await conn.fetch(_LINK, since, "$previousId"))


async def save_link_watermark(conn: asyncpg.Connection) -> None:
    """The link job has read up to this transaction's start (the clock of ``created_at``)."""
    await conn.execute(
        """INSERT INTO experiment_watermarks (job, ingested_through, updated_at)
           VALUES ($1, LOCALTIMESTAMP, LOCALTIMESTAMP)
           ON CONFLICT (job) DO UPDATE SET ingested_through = excluded.ingested_through,
                                           updated_at = excluded.updated_at""",
        LINK_JOB,
    )


# The goal-event rule (docs/conversions.md) for one anonymous/external test $1: goal events $2 in the
# test's time bounds ($4, $5), either ingested since $3 or (the relink pass) under an id in $3 whose
# links are new, each counted for the unit ``unit_event_join_sql`` maps it to.
_CONVERT_UNITS = """
WITH ev AS MATERIALIZED (
    SELECT e.user_id, e.anonymous_id, e.external_user_id, e."timestamp"
    FROM analytics_events e
    WHERE e.event_name = $2
      AND e."timestamp" >= $4 AND e."timestamp" < coalesce($5, 'infinity'::timestamp)
      AND {which}
), firsts AS (
    SELECT ua.assignment_id, min(e."timestamp") AS first_at
    FROM ev e
    {join}
    WHERE e."timestamp" >= ua.assigned_at
    GROUP BY ua.assignment_id
)
UPDATE experiment_unit_assignments a SET converted = true, converted_at = f.first_at
FROM firsts f
WHERE a.assignment_id = f.assignment_id AND (NOT a.converted OR a.converted_at > f.first_at)
"""
_SINCE = "e.created_at >= coalesce($3::timestamp, '-infinity'::timestamp)"
_RELINKED = "(e.anonymous_id = ANY($3::text[]) OR e.external_user_id = ANY($3::text[]))"


async def convert_unit_goal_events(
    conn: asyncpg.Connection,
    scans: Sequence[GoalScan],
    relinked: Sequence[asyncpg.Record] = (),
) -> int:
    """Apply the goal-event rule to anonymous/external tests; the number of assignments changed.

    Per test: the goal events ingested since its watermark, then, if identify/alias added links in this
    run, every goal event of the test under a newly linked id (those ingested before the link count
    now too).
    """
    changed = 0
    # Both sides of each new link: which of them matters depends on the test's unit (the join decides).
    ids = sorted({r["anonymous_id"] for r in relinked} | {r["external_user_id"] for r in relinked})
    for s in scans:
        join = unit_event_join_sql(s.unit, "$1", "e", "ua", probe=True)
        status: str = await conn.execute(
            _CONVERT_UNITS.format(which=_SINCE, join=join),
            s.test_id,
            s.goal_event,
            s.ingested_since,
            s.earliest,
            s.until,
        )
        changed += int(status.split()[-1])
        if ids:
            status = await conn.execute(
                _CONVERT_UNITS.format(which=_RELINKED, join=join),
                s.test_id,
                s.goal_event,
                ids,
                s.earliest,
                s.until,
            )
            changed += int(status.split()[-1])
    return changed
