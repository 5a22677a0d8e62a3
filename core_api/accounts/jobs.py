"""Scheduled upkeep of the accounts domain: expired login-throttle counters are deleted hourly."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from core_api.accounts import repository as repo
from kernel.auth import utcnow
from kernel.scheduler import try_job_lock

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

    from kernel.db import Database

__all__ = ["purge_login_throttle", "register_jobs"]

_log = logging.getLogger("corp_astro.accounts.jobs")


async def purge_login_throttle(db: Database, window_seconds: int) -> int:
    """Delete throttle counters whose window and backoff have ended; one process does it per run."""
    now = utcnow()
    async with db.transaction() as conn:
        if not await try_job_lock(conn, "accounts.purge_login_throttle"):
            return 0
        deleted = await repo.purge_throttle(conn, now - dt.timedelta(seconds=window_seconds), now)
    if deleted:
        _log.info("login throttle purged", extra={"deleted": deleted})
    return deleted


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """Schedule the hourly purge."""
    scheduler.add_job(
        purge_login_throttle,
        "interval",
        hours=1,
        args=[app.state.db, app.state.settings.auth_limits.window_seconds],
        id="accounts.purge_login_throttle",
    )
