"""The in-process APScheduler 3.x scheduler and the single-runner guard every job uses.

APScheduler 3.x cannot share a job store between processes, so every process with the scheduler on
schedules every job, and each job run first takes ``pg_try_advisory_xact_lock`` on its job (and
period) key: exactly one process does the work, the others skip.

Every job is named ``<domain>.<job>`` (its ``id``, which is also its APScheduler name), and whatever it
logs carries ``job=<that name>``, instead of the function's name (``_run``, ``register_jobs.<locals>.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from kernel import metrics
from kernel.db import unreachable
from kernel.observability import job_var

if TYPE_CHECKING:
    import asyncpg

    from kernel.db import Database

__all__ = [
    "JOB_ID",
    "LOCK_ENV",
    "NamedJobScheduler",
    "create_scheduler",
    "job_lock",
    "named_job",
    "start_if_elected",
    "start_when_elected",
    "stop_at_safe_point",
    "try_job_lock",
]

_log = logging.getLogger(__name__)

# "<domain>.<job>": lower case words, dot-separated, at least two parts.
JOB_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def _unavailable(name: str, exc: BaseException) -> None:
    # A restart or outage of PostgreSQL is not a bug in the job: one line, not APScheduler's traceback;
    # the run counts as failed and the job runs again at its next time.
    _log.warning(
        "job %s: database unavailable (%s); it runs again at its next time", name, type(exc).__name__
    )


def named_job(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` under the name ``name``, setting ``job_var`` while it runs (so its logs say which job),
    each run counted by outcome with its duration (``corp_astro_job_runs_total`` and the rest). A run
    that finds the database unreachable (``kernel.db.unreachable``) logs a warning and returns None."""
    if inspect.iscoroutinefunction(func):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            token = job_var.set(name)
            start, ok = time.perf_counter(), False
            try:
                result = await func(*args, **kwargs)
                ok = True
                return result
            except Exception as exc:
                if not unreachable(exc):
                    raise
                _unavailable(name, exc)
                return None
            finally:
                metrics.record_job(name, ok, time.perf_counter() - start)
                job_var.reset(token)

        job: Callable[..., Any] = run_async
    else:

        def run_sync(*args: Any, **kwargs: Any) -> Any:
            token = job_var.set(name)
            start, ok = time.perf_counter(), False
            try:
                result = func(*args, **kwargs)
                ok = True
                return result
            except Exception as exc:
                if not unreachable(exc):
                    raise
                _unavailable(name, exc)
                return None
            finally:
                metrics.record_job(name, ok, time.perf_counter() - start)
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


@contextlib.asynccontextmanager
async def job_lock(db: Database, key: str) -> AsyncIterator[bool]:
    """Hold ``key``'s advisory lock for a run of several transactions; yields False if another process
    holds it.

    A session lock on a connection of its own, outside the pool and with no transaction open: a run that
    held a pooled connection for its lock while waiting for another for its work would deadlock as soon as
    as many runs as the pool has connections started together, and an open transaction would hold back
    whatever reads up to the oldest open transaction (the experiments' unit-state fold). Closing the
    connection (or the process dying) releases the lock.
    """
    async with db.dedicated_connection() as conn:
        got: bool = await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
        if not got:
            _log.info("job already running elsewhere", extra={"job_key": key})
        yield got


# serve --workers N names a lock file here: the worker holding it runs the scheduler, the others wait.
LOCK_ENV = "CORP_ASTRO_SCHEDULER_LOCK"
_ELECTION_SECONDS = 5.0
_held: list[int] = []  # the lock's descriptor, open for the life of the process (the OS drops it at exit)
SCHEDULERS = metrics.gauge("corp_astro_scheduler_processes", "Processes running the scheduled jobs.")


def _try_lock(path: str) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held.append(fd)
    return True


def start_if_elected(scheduler: NamedJobScheduler, lock_path: str | None) -> bool:
    """Start ``scheduler`` if this process may run the jobs: always when there is no lock (one process),
    else when it takes ``lock_path`` (one of several workers: exactly one runs them)."""
    if lock_path is not None and not _try_lock(lock_path):
        return False
    scheduler.start()
    SCHEDULERS.set(1)
    return True


async def start_when_elected(scheduler: NamedJobScheduler, lock_path: str) -> None:
    """Try for the lock every few seconds: if the worker running the jobs dies, another takes over."""
    # Polled: flock has no asynchronous wait, and a takeover within seconds is soon enough.
    while not start_if_elected(scheduler, lock_path):  # noqa: ASYNC110
        await asyncio.sleep(_ELECTION_SECONDS)


async def stop_at_safe_point(scheduler: NamedJobScheduler, timeout: float) -> None:
    """No new runs; the runs under way get ``timeout`` seconds to end; what still runs then is cancelled,
    which rolls its transaction back (every job commits its work in transactions, and a run that
    did not commit is redone by its next run)."""
    if not scheduler.running:
        return
    scheduler.pause()
    await asyncio.sleep(0)  # AsyncIOScheduler applies pause() and shutdown() on the loop's next turn
    running = [f for ex in scheduler._executors.values() for f in getattr(ex, "_pending_futures", ())]
    if running:
        _done, late = await asyncio.wait(running, timeout=max(0.0, timeout))
        if late:
            _log.warning("cancelling %d job run(s) at shutdown", len(late))
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)
    SCHEDULERS.set(0)
    with contextlib.suppress(OSError):
        while _held:
            os.close(_held.pop())
