"""Scheduled upkeep of the ingest domain: forgetting message ids older than the dedupe window."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from ingest import repository
from kernel.auth import utcnow
from kernel.scheduler import try_job_lock

if TYPE_CHECKING:
    from kernel.db import Database

__all__ = ["prune_message_ids", "register_jobs"]

_log = logging.getLogger("corp_astro.ingest")
_BATCH = 50_000


async def prune_message_ids(db: Database, days: int) -> int:
    """Delete ledger rows first seen more than ``days`` ago, in short transactions; return the count.

    A message retried after the window would be stored again: the window (default 7 days, Segment keeps
    at least 24 h) is the exactly-once horizon, documented in docs/schema.md.
    """
    cutoff = utcnow() - dt.timedelta(days=days)
    total = 0
    while True:
        async with db.transaction() as conn:
            if not await try_job_lock(conn, "ingest:prune_message_ids"):
                return total
            n = await repository.prune_message_ids(conn, cutoff, _BATCH)
        total += n
        if n < _BATCH:
            break
    if total:
        _log.info("pruned ingest message ids", extra={"rows": total, "days": days})
    return total


def register_jobs(scheduler: Any, app: Any) -> None:
    """Prune the exactly-once ledger hourly."""
    days = app.state.settings.ingest.dedupe_days

    async def run() -> None:
        await prune_message_ids(app.state.db, days)

    scheduler.add_job(run, "interval", hours=1, id="ingest.prune_message_ids", replace_existing=True)
