"""Scheduled work: conversions from ingested goal events (``ab_tests.goal_event``)."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from kernel.scheduler import try_job_lock

__all__ = ["convert_goal_events", "register_jobs"]

_log = logging.getLogger(__name__)

# An assignment converts at the first event named like its test's goal_event that the same user sent
# at or after being assigned. Only unconverted assignments of active or paused tests are considered,
# and converted_at keeps the event's own time, so a late run changes nothing but latency.
_CONVERT_GOALS = """
UPDATE ab_test_assignments a
SET converted = true, converted_at = g.first_at
FROM (
    SELECT a2.assignment_id, min(ev."timestamp") AS first_at
    FROM ab_tests t
    JOIN ab_test_assignments a2 ON a2.test_id = t.test_id AND NOT a2.converted
    JOIN analytics_events ev
      ON ev.user_id = a2.user_id AND ev.event_name = t.goal_event AND ev."timestamp" >= a2.assigned_at
    WHERE t.goal_event IS NOT NULL AND t.status IN ('active', 'paused')
    GROUP BY a2.assignment_id
) g
WHERE a.assignment_id = g.assignment_id AND NOT a.converted
"""


async def convert_goal_events(conn: asyncpg.Connection) -> int:
    """Mark assignments converted from goal events; returns how many converted. Runs in ``conn``'s transaction."""
    status: str = await conn.execute(_CONVERT_GOALS)
    return int(status.split()[-1])


async def _run(app: Any) -> None:
    async with app.state.db.transaction() as conn:
        if not await try_job_lock(conn, "experiments.goal_events"):
            return
        n = await convert_goal_events(conn)
    if n:
        _log.info("goal events converted assignments", extra={"converted": n})


def register_jobs(scheduler: Any, app: Any) -> None:
    """Every minute, single-runner across processes."""
    scheduler.add_job(
        _run, "interval", minutes=1, args=[app], id="experiments.goal_events", replace_existing=True
    )
