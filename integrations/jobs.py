"""The webhook dispatcher runs in every process with the scheduler on (``integrations.dispatcher``).

It is not an APScheduler interval job: it waits on PostgreSQL notifications so that the first attempt
follows a commit within milliseconds, and polls every ``CORP_ASTRO_WEBHOOK_POLL_SECONDS`` besides.
Processes share the work through ``FOR UPDATE SKIP LOCKED`` claims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from integrations.dispatcher import Dispatcher
from integrations.workflows import jobs as workflow_jobs

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

__all__ = ["register_jobs"]


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """Start this process's dispatcher (stopped by ``routes.on_shutdown``)."""
    state = app.state
    dispatcher = Dispatcher(state.db, state.webhook_config, state.webhook_box)
    dispatcher.start()
    state.webhook_dispatcher = dispatcher
    workflow_jobs.register_jobs(scheduler, app)
