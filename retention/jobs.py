"""The retention boundary: the runs (plan, upkeep, the policy) and their schedule.

Hourly partition upkeep and the daily retention run. A run is many transactions, all opened here: one
per action (two for a drop: detach, then drop; each retried when a lock was not had in time), one per
day finalised, one per purge batch, one per ledger row. ``retention.service`` decides what to do and
does each step on the given connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import asyncpg

import aggregation
import ingest
from kernel.scheduler import job_lock
from retention import repository as repo
from retention import service
from retention.errors import RetentionBusy
from retention.schemas import Action, RetentionPolicy, month_label

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

    from kernel.db import Database

__all__ = ["detach_and_drop", "drop_detached", "plan", "register_jobs", "run"]

_log = logging.getLogger(__name__)
_LOCK_KEY = "corp-astro:retention"
T = TypeVar("T")


@asynccontextmanager
async def _single_runner(db: Database) -> AsyncIterator[None]:
    """Hold a session advisory lock for the whole run: one runner across every process.

    A session lock rather than a transaction lock because a run spans many transactions; closing the
    connection (or the process dying) releases it.
    """
    async with job_lock(db, _LOCK_KEY) as mine:
        if not mine:
            raise RetentionBusy("Retention or partition upkeep is already running in another process.")
        yield


async def _in_transaction(
    db: Database, policy: RetentionPolicy, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """Run ``work`` in a transaction, retrying with backoff when a lock was not had in time.

    A deadlock is retried too: PostgreSQL aborted this side, so a second try starts from nothing held.
    """
    delay = 0.05
    for attempt in range(policy.lock_retries):
        try:
            async with db.transaction() as conn:
                return await work(conn)
        except (asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.DeadlockDetectedError) as exc:
            if attempt == policy.lock_retries - 1:
                raise
            if isinstance(exc, asyncpg.exceptions.DeadlockDetectedError):
                # Our lock order crossed someone else's: worth knowing even though the retry recovers.
                _log.warning("deadlock, retrying", extra={"attempt": attempt + 1, "error": str(exc)})
            else:
                _log.info("lock busy, retrying", extra={"attempt": attempt + 1})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


async def detach_and_drop(db: Database, policy: RetentionPolicy, part: repo.Partition) -> None:
    """Detach ``part``, then drop it, in two transactions (``drop_detached``).

    Dropping the table drops its foreign key to ``users``, which needs ACCESS EXCLUSIVE on ``users``;
    held together with the parent's lock from the DETACH, it deadlocked with flushes, which lock their
    users first and then write the parent (``repo.detach``). A stop between the two transactions leaves a
    detached, marked table, which the next full run drops (``leftovers``).
    """
    detach = functools.partial(repo.detach, partition=part, lock_timeout_ms=policy.lock_timeout_ms)
    await _in_transaction(db, policy, detach)
    await drop_detached(db, policy, part.parent, part.name)


async def drop_detached(db: Database, policy: RetentionPolicy, parent: str, name: str) -> None:
    """Drop the table ``name``, which ``repo.detach`` detached from ``parent``, in its own transaction."""
    drop = functools.partial(
        repo.drop_detached, parent=parent, name=name, lock_timeout_ms=policy.lock_timeout_ms
    )
    await _in_transaction(db, policy, drop)


async def plan(db: Database, now: dt.date, policy: RetentionPolicy) -> list[Action]:
    """Everything a run at ``now`` would do, with row counts and reasons. Changes nothing.

    Runs in a READ ONLY transaction, so PostgreSQL itself guarantees that planning writes nothing.
    """
    async with db.pool.acquire() as conn, conn.transaction(readonly=True):
        return await service.plan_actions(conn, now, policy)


class _Run:
    """One retention run: its id, its clock and policy, and the ledger row of every action it takes."""

    def __init__(self, db: Database, now: dt.date, policy: RetentionPolicy) -> None:
        self.db, self.now, self.policy = db, now, policy
        self.run_id = uuid.uuid4()

    async def record(self, action: Action, started: dt.datetime) -> None:
        """The action's ledger row, in its own transaction (after the action's own committed or not)."""
        async with self.db.transaction() as conn:
            await service.record(conn, self.run_id, self.now, action, started)

    async def upkeep(self) -> list[Action]:
        """Premake partitions and drain the default partitions, one transaction per month; then the
        dedupe ledger's week partitions."""
        async with self.db.transaction() as conn:
            actions = await service.upkeep_actions(conn, self.now, self.policy)
        for action in actions:
            started = service.utcnow()
            month = action.month
            if month is None:  # a report: rows or a partition upkeep leaves alone
                _log.warning(
                    "upkeep skipped %s %s: %s",
                    action.action,
                    action.target,
                    action.reason,
                    extra={"action": action.action, "target": action.target, "rows": action.rows},
                )
            else:
                try:
                    ensure = functools.partial(
                        repo.ensure_month, month=month, lock_timeout_ms=self.policy.lock_timeout_ms
                    )
                    _, moved = await _in_transaction(self.db, self.policy, ensure)
                    action.status = "done"
                    if action.action == "drain_default":
                        action.rows = moved
                except Exception as exc:  # one month that cannot be made must not stop the others
                    service.failed(action, exc)
            await self.record(action, started)
        ledger = await self.ledger()
        return actions + ([ledger] if ledger else [])

    async def ledger(self) -> Action | None:
        """Ingest's dedupe ledger: its week partitions made ahead and dropped past the window, on the
        database's clock (not the run's ``now``). The action, only if it changed something or failed."""
        started = service.utcnow()
        action = Action("ledger_partitions", "ingest_message_ids", 0, "a partition a week", "done")
        try:
            keep = functools.partial(
                ingest.keep_ledger_partitions, lock_timeout_ms=self.policy.lock_timeout_ms
            )
            done = await _in_transaction(self.db, self.policy, keep)
        except Exception as exc:  # the event partitions are made either way; retried next hour
            service.failed(action, exc)
        else:
            if not (done.created or done.dropped or done.moved or done.expired):
                return None
            action.rows = done.moved + done.expired
            action.reason = (
                f"created {len(done.created)} and dropped {len(done.dropped)} week partitions; "
                f"{done.moved} claims moved out of the default partition, {done.expired} expired"
            )
        await self.record(action, started)
        return action

    async def _finalise_day(self, day: dt.date) -> str | None:
        """Finalise one day, rolling it up again first unless it already reconciles; why not, if not."""
        # Days whose rollups already reconcile (including days without events) finalise as they are;
        # only the others are rolled up again from the raw rows, which still exist at this point.
        async with self.db.transaction() as conn:
            _, _, ok = await aggregation.finalise_day(conn, day)
        if ok:
            return None
        try:
            await aggregation.rollup_day(self.db, day)
        except Exception as exc:  # one failed day must not stop the others; it is retried next run
            _log.exception("rollup failed", extra={"day": str(day)})
            return f"{day}: rollup failed ({type(exc).__name__})"
        async with self.db.transaction() as conn:
            raw, rolled, ok = await aggregation.finalise_day(conn, day)
        return None if ok else f"{day}: raw {raw} != rollup {rolled}"

    async def _finalise(self, month: dt.date, end: dt.date) -> Action:
        """Roll up and reconcile every pending day of one month; the month's finalise action."""
        async with self.db.transaction() as conn:
            pending = await service.pending_days(conn, month, end)
        failures = [why for day in pending if (why := await self._finalise_day(day)) is not None]
        async with self.db.transaction() as conn:
            rows = await repo.finalised_rows(conn, month, end)
        return service.finalise_result(month, len(pending), failures, rows)

    async def _drop(self, month: dt.date, parts: list[repo.Partition]) -> list[Action]:
        """Drop the month's partitions (properties first), each in its own transaction, if all finalised."""
        async with self.db.transaction() as conn:
            pending = await service.pending_days(conn, month, parts[0].end)
            rows = await repo.finalised_rows(conn, month, parts[0].end)
        actions = []
        sibling_failed = False
        for part in parts:  # properties before events (repo.PARENTS)
            started = service.utcnow()
            action = service.drop_action(part, rows, pending, sibling_failed)
            if action.status == "done":
                try:
                    await detach_and_drop(self.db, self.policy, part)
                except Exception as exc:  # retried next run; the month's other partition waits for it
                    sibling_failed = True
                    service.failed(action, exc)
            actions.append(action)
            await self.record(action, started)
        return actions

    async def leftovers(self) -> list[Action]:
        """Drop the tables a run detached but stopped before dropping (``repo.detached_leftovers``)."""
        async with self.db.transaction() as conn:
            tables = await repo.detached_leftovers(conn)
        actions = []
        for parent, name in tables:
            started = service.utcnow()
            action = Action("drop_partition", name, None, service.LEFTOVER_REASON, "done")
            try:
                await drop_detached(self.db, self.policy, parent, name)
            except Exception as exc:  # retried next run
                service.failed(action, exc)
            actions.append(action)
            await self.record(action, started)
        return actions

    async def _month(self, month: dt.date, parts: list[repo.Partition]) -> list[Action]:
        """Finalise one month past the aggregation window and, past the raw window, drop its partitions."""
        actions = []
        end = parts[0].end
        started = service.utcnow()
        async with self.db.transaction() as conn:
            needs_work = bool(await service.pending_days(conn, month, end))
        if needs_work:
            action = await self._finalise(month, end)
            actions.append(action)
            await self.record(action, started)
        if end > service.months_ago(self.now, self.policy.raw_retention_months):
            return actions
        return actions + await self._drop(month, parts)

    async def policy_months(self) -> list[Action]:
        """Every month past the aggregation window, oldest first; a failing month never stops the others."""
        async with self.db.transaction() as conn:
            months = await service.old_months(
                conn, service.months_ago(self.now, self.policy.aggregate_after_months)
            )
        actions = []
        for month, parts in months.items():
            started = service.utcnow()
            try:
                actions += await self._month(month, parts)
            except Exception as exc:  # one month that cannot be finalised must not stop the others
                action = service.failed(
                    Action("finalise_month", month_label(month), None, "finalise and drop"), exc
                )
                actions.append(action)
                await self.record(action, started)
        return actions

    async def purge(self) -> list[Action]:
        """Purge each log through its owner, one bounded batch per transaction."""
        cutoff = service.log_cutoff(self.now, self.policy)
        limit = self.policy.purge_batch_size
        actions = []
        for log in service.LOG_TABLES:
            started = service.utcnow()
            action = Action("purge", log.name, 0, f"{log.column} before {cutoff.date().isoformat()}", "done")
            try:
                while True:  # one bounded batch per transaction: short locks, bounded WAL per commit
                    async with self.db.transaction() as conn:
                        n = await log.purge(conn, cutoff, limit)
                    action.rows = (action.rows or 0) + n
                    if n < limit:
                        break
            except Exception as exc:  # the other tables are still purged
                service.failed(action, exc)
            if action.rows or action.status == "failed":
                actions.append(action)
                await self.record(action, started)
        return actions


async def run(
    db: Database, now: dt.date, policy: RetentionPolicy, *, upkeep_only: bool = False
) -> list[Action]:
    """Carry out the plan for ``now``; safe to re-run (every step is idempotent). Single runner."""
    job = _Run(db, now, policy)
    async with _single_runner(db):
        actions = await job.upkeep()
        if not upkeep_only:
            actions += await job.leftovers()
            actions += await job.policy_months()
            actions += await job.purge()
    _log.info("retention run finished", extra={"run_id": str(job.run_id), "actions": len(actions)})
    return actions


async def _scheduled(db: Database, policy: RetentionPolicy, *, upkeep_only: bool) -> None:
    try:
        await run(db, dt.datetime.now(dt.UTC).date(), policy, upkeep_only=upkeep_only)
    except RetentionBusy:
        _log.info("retention already running in another process; skipped")


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """Partition upkeep at :10 every hour; the full policy daily at 03:30 UTC."""
    args = {"db": app.state.db, "policy": app.state.settings.retention}
    scheduler.add_job(
        _scheduled, "cron", minute=10, kwargs={**args, "upkeep_only": True}, id="retention.partition_upkeep"
    )
    scheduler.add_job(
        _scheduled, "cron", hour=3, minute=30, kwargs={**args, "upkeep_only": False}, id="retention.policy"
    )
