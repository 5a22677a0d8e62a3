"""The delivery job: every few seconds, deliver the scheduled notifications that are due.

Every process with the scheduler on runs it; ``FOR UPDATE SKIP LOCKED`` lets them share the work
without ever delivering a row twice (see ``service.deliver_batch``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from core_api.notifications.service import deliver_due

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

__all__ = ["DELIVERY_INTERVAL_SECONDS", "register_jobs"]

_log = logging.getLogger("corp_astro.notifications.jobs")

DELIVERY_INTERVAL_SECONDS = float(os.environ.get("CORP_ASTRO_DELIVERY_INTERVAL_SECONDS", "2"))


async def _deliver(app: Litestar) -> None:
    try:
        await deliver_due(app.state.db, app.state.push_provider)
    except Exception:  # the database may be down; the next run retries
        _log.exception("scheduled delivery run failed")


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """Schedule the delivery job."""
    scheduler.add_job(
        _deliver, "interval", seconds=DELIVERY_INTERVAL_SECONDS, args=[app], id="notifications.deliver_due"
    )
