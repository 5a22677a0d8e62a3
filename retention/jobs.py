"""Scheduled retention work: hourly partition upkeep and the daily retention run (single runner)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from retention import service
from retention.errors import RetentionBusy
from retention.schemas import RetentionPolicy

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

    from kernel.db import Database

__all__ = ["register_jobs"]

_log = logging.getLogger(__name__)


async def _run(db: Database, *, upkeep_only: bool) -> None:
    try:
        await service.run(
            db, dt.datetime.now(dt.UTC).date(), RetentionPolicy.from_env(), upkeep_only=upkeep_only
        )
    except RetentionBusy:
        _log.info("retention already running in another process; skipped")


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """Partition upkeep at :10 every hour; the full policy daily at 03:30 UTC."""
    db = app.state.db
    scheduler.add_job(_run, "cron", minute=10, kwargs={"db": db, "upkeep_only": True}, id="partition-upkeep")
    scheduler.add_job(
        _run, "cron", hour=3, minute=30, kwargs={"db": db, "upkeep_only": False}, id="retention"
    )
