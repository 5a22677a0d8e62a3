"""Partition upkeep and the retention policy: ``plan`` (read only) and ``run`` (each action its own
transaction, each recorded in the ``retention_actions`` ledger).

A run, in order: premake partitions and drain the default partitions; finalise the rollups of months
past the aggregation window; drop raw partitions past the raw window, but only when every day in them
has finalised, reconciled rollups; purge logs and audit trails in bounded batches.
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
from retention import repository as repo
from retention.errors import RetentionBusy
from retention.schemas import Action, RetentionPolicy, add_months, month_start

if TYPE_CHECKING:
    from core_api.db import Database

__all__ = ["months_ago", "plan", "run"]

_log = logging.getLogger(__name__)
_LOCK_KEY = "corp-astro:retention"
T = TypeVar("T")


def months_ago(now: dt.date, months: int) -> dt.date:
    """``now`` minus ``months`` calendar months, the day clamped to that month's length."""
    first = add_months(now, -months)
    last_day = (add_months(first, 1) - dt.timedelta(days=1)).day
    return first.replace(day=min(now.day, last_day))


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


@asynccontextmanager
async def _single_runner(db: Database) -> AsyncIterator[None]:
    """Hold a session advisory lock for the whole run: one runner across every process.

    A session lock rather than a transaction lock because a run spans many transactions; closing the
    connection (or the process dying) releases it.
    """
    # A dedicated connection, so the session lock can never be left behind on a pooled one.
    async with db.dedicated_connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _LOCK_KEY):
            raise RetentionBusy("Retention or partition upkeep is already running in another process.")
        yield


async def _in_transaction(
    db: Database, policy: RetentionPolicy, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """Run ``work`` in a transaction, retrying with backoff when a lock was not had in time."""
    delay = 0.05
    for attempt in range(policy.lock_retries):
        try:
            async with db.transaction() as conn:
                return await work(conn)
        except asyncpg.exceptions.LockNotAvailableError:
            if attempt == policy.lock_retries - 1:
                raise
            _log.info("lock busy, retrying", extra={"attempt": attempt + 1})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


# --- What to do -----------------------------------------------------------------------------------


async def _upkeep_actions(conn: asyncpg.Connection, now: dt.date, policy: RetentionPolicy) -> list[Action]:
    have = {p.start for p in await repo.list_partitions(conn, repo.EVENT_PARENT)}
    have &= {p.start for p in await repo.list_partitions(conn, repo.PROPERTY_PARENT)}
    in_default = await repo.default_months(conn)
    actions = [
        Action("drain_default", f"{m:%Y-%m}", n, "rows in the default partition move to their own month")
        for m, n in in_default.items()
    ]
    current = month_start(now)
    for month in (add_months(current, i) for i in range(policy.premake_months + 1)):
        if month not in have and month not in in_default:
            actions.append(
                Action(
                    "create_partition", f"{month:%Y-%m}", 0, f"premade {policy.premake_months} months ahead"
                )
            )
    return actions


async def _old_months(conn: asyncpg.Connection, cutoff: dt.date) -> dict[dt.date, list[repo.Partition]]:
    """Partitions of either table whose whole range ends on or before ``cutoff``, grouped by month."""
    months: dict[dt.date, list[repo.Partition]] = {}
    for parent in repo.PARENTS:  # properties first within each month
        for part in await repo.list_partitions(conn, parent):
            if part.end <= cutoff:
                months.setdefault(part.start, []).append(part)
    return dict(sorted(months.items()))


async def _pending_days(conn: asyncpg.Connection, start: dt.date, end: dt.date) -> list[dt.date]:
    done = await aggregation.finalised_days(conn, start, end - dt.timedelta(days=1))
    return [d for d in _days(start, end) if d not in done]


async def _finalised_rows(conn: asyncpg.Connection, start: dt.date, end: dt.date) -> int:
    n: int = await conn.fetchval(
        "SELECT coalesce(sum(raw_events), 0) FROM rollup_finalisations WHERE day >= $1 AND day < $2",
        start,
        end,
    )
    return n


async def _purge_actions(conn: asyncpg.Connection, now: dt.date, policy: RetentionPolicy) -> list[Action]:
    cutoff = _midnight(months_ago(now, policy.log_retention_months))
    actions = []
    for table, column in repo.LOG_TABLES:
        if rows := await repo.count_older(conn, table, column, cutoff):
            actions.append(Action("purge", table, rows, f"{column} before {cutoff:%Y-%m-%d}"))
    return actions


async def plan(db: Database, now: dt.date, policy: RetentionPolicy) -> list[Action]:
    """Everything a run at ``now`` would do, with row counts and reasons. Changes nothing.

    Runs in a READ ONLY transaction, so PostgreSQL itself guarantees that planning writes nothing.
    """
    agg_cutoff = months_ago(now, policy.aggregate_after_months)
    raw_cutoff = months_ago(now, policy.raw_retention_months)
    async with db.pool.acquire() as conn, conn.transaction(readonly=True):
        actions = await _upkeep_actions(conn, now, policy)
        for month, parts in (await _old_months(conn, agg_cutoff)).items():
            end = parts[0].end
            pending = await _pending_days(conn, month, end)
            if pending:
                actions.append(
                    Action(
                        "finalise_month",
                        f"{month:%Y-%m}",
                        None,
                        f"{len(pending)} of {(end - month).days} days to roll up and reconcile",
                    )
                )
            if end <= raw_cutoff:
                why = "past the raw window; every day finalised"
                if pending:
                    why = f"past the raw window; dropped only if its {len(pending)} pending days reconcile"
                rows = await _finalised_rows(conn, month, end)
                actions.extend(
                    Action("drop_partition", p.name, rows if p.parent == repo.EVENT_PARENT else None, why)
                    for p in parts
                )
        actions.extend(await _purge_actions(conn, now, policy))
    return actions


# --- Doing it ------------------------------------------------------------------------------------


async def _record(
    db: Database, run_id: uuid.UUID, now: dt.date, action: Action, started: dt.datetime
) -> None:
    async with db.transaction() as conn:
        await repo.record_action(
            conn,
            run_id=run_id,
            policy_now=_midnight(now),
            action=action.action,
            target=action.target,
            status=action.status,
            rows=action.rows,
            reason=action.reason,
            started_at=started,
        )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def _do_upkeep(db: Database, now: dt.date, policy: RetentionPolicy, run_id: uuid.UUID) -> list[Action]:
    async with db.pool.acquire() as conn:
        actions = await _upkeep_actions(conn, now, policy)
    for action in actions:
        started = _utcnow()
        month = dt.datetime.strptime(action.target, "%Y-%m").date()
        ensure = functools.partial(repo.ensure_month, month=month, lock_timeout_ms=policy.lock_timeout_ms)
        _, moved = await _in_transaction(db, policy, ensure)
        action.status = "done"
        if action.action == "drain_default":
            action.rows = moved
        await _record(db, run_id, now, action, started)
    return actions


async def _do_finalise(db: Database, month: dt.date, end: dt.date) -> Action:
    """Roll up and reconcile every pending day of one month; the month's finalise action."""
    async with db.pool.acquire() as conn:
        pending = await _pending_days(conn, month, end)
    failures: list[str] = []
    for day in pending:
        # Days whose rollups already reconcile (including days without events) finalise as they are;
        # only the others are rolled up again from the raw rows, which still exist at this point.
        async with db.transaction() as conn:
            raw, rolled, ok = await aggregation.finalise_day(conn, day)
        if ok:
            continue
        try:
            await aggregation.rollup_day(db, day)
        except Exception as exc:  # one failed day must not stop the others; it is retried next run
            _log.exception("rollup failed", extra={"day": str(day)})
            failures.append(f"{day}: rollup failed ({type(exc).__name__})")
            continue
        async with db.transaction() as conn:
            raw, rolled, ok = await aggregation.finalise_day(conn, day)
        if not ok:
            failures.append(f"{day}: raw {raw} != rollup {rolled}")
    async with db.pool.acquire() as conn:
        rows = await _finalised_rows(conn, month, end)
    if failures:
        return Action(
            "finalise_month",
            f"{month:%Y-%m}",
            rows,
            f"{len(failures)} days did not reconcile ({'; '.join(failures[:3])})",
            "failed",
        )
    return Action(
        "finalise_month", f"{month:%Y-%m}", rows, f"{len(pending)} days rolled up and reconciled", "done"
    )


async def _do_policy(db: Database, now: dt.date, policy: RetentionPolicy, run_id: uuid.UUID) -> list[Action]:
    agg_cutoff = months_ago(now, policy.aggregate_after_months)
    raw_cutoff = months_ago(now, policy.raw_retention_months)
    async with db.pool.acquire() as conn:
        months = await _old_months(conn, agg_cutoff)
    actions = []
    for month, parts in months.items():
        end = parts[0].end
        started = _utcnow()
        async with db.pool.acquire() as conn:
            needs_work = bool(await _pending_days(conn, month, end))
        if needs_work:
            action = await _do_finalise(db, month, end)
            actions.append(action)
            await _record(db, run_id, now, action, started)
        if end > raw_cutoff:
            continue
        async with db.pool.acquire() as conn:
            pending = await _pending_days(conn, month, end)
            rows = await _finalised_rows(conn, month, end)
        for part in parts:  # properties before events: the FK points from properties to events
            started = _utcnow()
            event_rows = rows if part.parent == repo.EVENT_PARENT else None
            if pending:
                action = Action(
                    "drop_partition",
                    part.name,
                    event_rows,
                    f"kept: {len(pending)} days have no finalised, reconciled rollups (first {pending[0]})",
                    "skipped",
                )
            else:
                drop = functools.partial(
                    repo.detach_and_drop, partition=part, lock_timeout_ms=policy.lock_timeout_ms
                )
                await _in_transaction(db, policy, drop)
                action = Action(
                    "drop_partition",
                    part.name,
                    event_rows,
                    "past the raw window; every day finalised",
                    "done",
                )
            actions.append(action)
            await _record(db, run_id, now, action, started)
    return actions


async def _do_purge(db: Database, now: dt.date, policy: RetentionPolicy, run_id: uuid.UUID) -> list[Action]:
    cutoff = _midnight(months_ago(now, policy.log_retention_months))
    actions = []
    for table, column in repo.LOG_TABLES:
        started = _utcnow()
        total = 0
        while True:  # one bounded batch per transaction: short locks, bounded WAL per commit
            async with db.transaction() as conn:
                n = await repo.purge_batch(conn, table, column, cutoff, policy.purge_batch_size)
            total += n
            if n < policy.purge_batch_size:
                break
        if total:
            action = Action("purge", table, total, f"{column} before {cutoff:%Y-%m-%d}", "done")
            actions.append(action)
            await _record(db, run_id, now, action, started)
    return actions


async def run(
    db: Database, now: dt.date, policy: RetentionPolicy, *, upkeep_only: bool = False
) -> list[Action]:
    """Carry out the plan for ``now``; safe to re-run (every step is idempotent). Single runner."""
    run_id = uuid.uuid4()
    async with _single_runner(db):
        actions = await _do_upkeep(db, now, policy, run_id)
        if not upkeep_only:
            actions += await _do_policy(db, now, policy, run_id)
            actions += await _do_purge(db, now, policy, run_id)
    _log.info("retention run finished", extra={"run_id": str(run_id), "actions": len(actions)})
    return actions
