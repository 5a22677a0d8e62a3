"""The delivery job: every few seconds, deliver the scheduled notifications that are due.

Every process with the scheduler on runs it; ``FOR UPDATE SKIP LOCKED`` lets them share the work
without ever delivering a row twice (see ``service.deliver_batch``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core_api.notifications.push import PushProvider
from core_api.notifications.service import DELIVERY_BATCH, deliver_batch

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

    from kernel.db import Database

__all__ = ["deliver_due", "register_jobs"]

_log = logging.getLogger("corp_astro.notifications.jobs")


async def deliver_due(
    db: Database, provider: PushProvider, *, batch_size: int = DELIVERY_BATCH, max_batches: int = 20
) -> int:
    """Deliver due schedules in batches of one transaction each, until none are left (or a bound)."""
    total = 0
    for _ in range(max_batches):
        async with db.transaction() as conn:
            delivered = await deliver_batch(conn, provider, batch_size)
        total += delivered
        if delivered < batch_size:
            break
    if total:
        _log.info("scheduled notifications delivered", extra={"delivered": total})
    return total


async def _deliver(app: Litestar) -> None:
    try:
        await deliver_due(app.state.db, app.state.push_provider)
    except Exception:  # the database may be down; the next run retries
        _log.exception("scheduled delivery run failed")


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """Schedule the delivery job."""
    scheduler.add_job(
        _deliver,
        "interval",
        seconds=app.state.settings.delivery_interval_seconds,
        args=[app],
        id="notifications.deliver_due",
    )
