"""Scheduled work: conversions from ingested goal events (``ab_tests.goal_event``), docs/conversions.md."""

from __future__ import annotations

import logging
from typing import Any

from experiments.service import convert_goal_events
from kernel.scheduler import try_job_lock

__all__ = ["convert_goal_events", "register_jobs"]

_log = logging.getLogger(__name__)


async def _run(app: Any) -> None:
    async with app.state.db.transaction() as conn:
        if not await try_job_lock(conn, "experiments.goal_events"):
            return
        n = await convert_goal_events(conn)
    if n:
        _log.info("goal events converted assignments", extra={"converted": n})


def register_jobs(scheduler: Any, app: Any) -> None:
    """Every minute, single-runner across processes; each run reads only what was ingested since the last."""
    scheduler.add_job(
        _run, "interval", minutes=1, args=[app], id="experiments.goal_events", replace_existing=True
    )
