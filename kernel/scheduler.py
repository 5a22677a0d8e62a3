"""The in-process APScheduler 3.x scheduler and the single-runner guard every job uses.

APScheduler 3.x cannot share a job store between processes, so every process with the scheduler on
schedules every job, and each job run first takes ``pg_try_advisory_xact_lock`` on its job (and
period) key: exactly one process does the work, the others skip.

Every job is named ``<domain>.<job>`` (its ``id``, which is also its APScheduler name), and whatever it
logs carries ``job=<that name>``, instead of the function's name (``_run``, ``register_jobs.<locals>.run``).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from kernel.observability import job_var

if TYPE_CHECKING:
    import asyncpg

__all__ = ["JOB_ID", "NamedJobScheduler", "create_scheduler", "named_job", "try_job_lock"]

_log = logging.getLogger(__name__)

# "<domain>.<job>": lower case words, dot-separated, at least two parts.
JOB_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def named_job(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` under the name ``name``, setting ``job_var`` while it runs (so its logs say which job)."""
    if inspect.iscoroutinefunction(func):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            token = job_var.set(name)
            try:
                return await func(*args, **kwargs)
            finally:
                job_var.reset(token)

        job: Callable[..., Any] = run_async
    else:

        def run_sync(*args: Any, **kwargs: Any) -> Any:
            token = job_var.set(name)
            try:
                return func(*args, **kwargs)
            finally:
                job_var.reset(token)

        job = run_sync
    job.__name__ = job.__qualname__ = name
    return job


class NamedJobScheduler(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """An ``AsyncIOScheduler`` whose ``add_job`` requires ``id="<domain>.<job>"``; the name defaults to it."""

    def add_job(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Add ``func`` as job ``id`` (``<domain>.<job>``), named the same unless ``name`` is given."""
        job_id = kwargs.get("id")
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise ValueError(f'a scheduled job needs id="<domain>.<job>" (lower case), not {job_id!r}')
        name = kwargs.setdefault("name", job_id)
        return super().add_job(named_job(name, func), *args, **kwargs)


def create_scheduler() -> NamedJobScheduler:
    """A UTC scheduler whose jobs never pile up: one instance each, late runs coalesced."""
    return NamedJobScheduler(
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
