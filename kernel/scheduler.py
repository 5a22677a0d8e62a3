"""The in-process APScheduler 3.x scheduler and the single-runner guard every job uses.

APScheduler 3.x cannot share a job store between processes, so every process with the scheduler on
schedules every job, and each job run first takes ``pg_try_advisory_xact_lock`` on its job (and
period) key: exactly one process does the work, the others skip.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

if TYPE_CHECKING:
    import asyncpg

__all__ = ["create_scheduler", "try_job_lock"]

_log = logging.getLogger(__name__)


def create_scheduler() -> AsyncIOScheduler:
    """A UTC scheduler whose jobs never pile up: one instance each, late runs coalesced."""
    return AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )


async def try_job_lock(conn: asyncpg.Connection, key: str) -> bool:
    """Take the transaction-scoped advisory lock for ``key``; False if another process holds it.

    Must run inside a transaction: the lock is released when that transaction ends.
    """
    got: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", key)
    if not got:
        _log.info("job already running elsewhere", extra={"job_key": key})
    return got
