"""Partition upkeep and the retention policy: ``plan`` (read only) and ``run`` (each action its own
transaction, each recorded in the ``retention_actions`` ledger).

A run, in order: premake partitions and drain the default partitions; finalise the rollups of months
past the aggregation window; drop raw partitions past the raw window, but only when every day in them
has finalised, reconciled rollups; purge logs and audit trails in bounded batches.

Upkeep makes partitions only for months inside its window (the retained months through the premade
ones), so client-supplied timestamps cannot make it create partitions: rows of the default partitions
outside the window, and partitions whose bounds are not dates, are reported as skipped and left alone.
One failing action is recorded as failed and the run carries on (docs/event-time-window.md).
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
from retention.schemas import Action, RetentionPolicy, add_months, month_label, month_start, upkeep_window

if TYPE_CHECKING:
    from kernel.db import Database

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
    first, last = upkeep_window(now, policy)
    events, odd = await repo.scan_partitions(conn, repo.EVENT_PARENT)
    props, odd_props = await repo.scan_partitions(conn, repo.PROPERTY_PARENT)
    have = {p.start for p in events} & {p.start for p in props}
    in_default = await repo.default_months(conn, first, last)
    drain = "rows in the default partition move to their own month"
    actions = [Action("drain_default", month_label(m), n, drain, month=m) for m, n in in_default.items()]
    month = max(month_start(now), first)
    while month <= last:
        if month not in have and month not in in_default:
            why = f"premade {policy.premake_months} months ahead"
            actions.append(Action("create_partition", month_label(month), 0, why, month=month))
        month = add_months(month, 1)
    actions.extend(out.action(first, last) for out in await repo.default_outside(conn, first, last))
    odd_why = "bounds {} are not dates upkeep manages; left alone"
    actions.extend(Action("odd_partition", n, None, odd_why.format(b), "skipped") for n, b in odd + odd_props)
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
            actions.append(Action("purge", table, rows, f"{column} before {cutoff.date().isoformat()}"))
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
                        month_label(month),
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


def _failed(action: Action, exc: Exception) -> Action:
    """Mark ``action`` failed with the error; the run goes on with the next one."""
    _log.error(
        "retention action failed: %s %s",
        action.action,
        action.target,
        exc_info=exc,
        extra={"action": action.action, "target": action.target},
    )
    action.status = "failed"
    action.reason = f"{action.reason}; failed: {type(exc).__name__}: {exc}"[:1000]
    return action


async def _do_upkeep(db: Database, now: dt.date, policy: RetentionPolicy, run_id: uuid.UUID) -> list[Action]:
    async with db.pool.acquire() as conn:
        actions = await _upkeep_actions(conn, now, policy)
    for action in actions:
        started = _utcnow()
        if action.month is None:  # a report: rows or a partition upkeep leaves alone
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
                    repo.ensure_month, month=action.month, lock_timeout_ms=policy.lock_timeout_ms
                )
                _, moved = await _in_transaction(db, policy, ensure)
                action.status = "done"
                if action.action == "drain_default":
                    action.rows = moved
            except Exception as exc:  # one month that cannot be made must not stop the others
                _failed(action, exc)
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
            month_label(month),
            rows,
            f"{len(failures)} days did not reconcile ({'; '.join(failures[:3])})",
            "failed",
        )
    return Action(
        "finalise_month", month_label(month), rows, f"{len(pending)} days rolled up and reconciled", "done"
    )


async def _policy_month(
    db: Database,
    now: dt.date,
    policy: RetentionPolicy,
    run_id: uuid.UUID,
    month: dt.date,
    parts: list[repo.Partition],
) -> list[Action]:
    """Finalise one month past the aggregation window and, past the raw window, drop its partitions."""
    actions = []
    end = parts[0].end
    started = _utcnow()
    async with db.pool.acquire() as conn:
        needs_work = bool(await _pending_days(conn, month, end))
    if needs_work:
        action = await _do_finalise(db, month, end)
        actions.append(action)
        await _record(db, run_id, now, action, started)
    if end > months_ago(now, policy.raw_retention_months):
        return actions
    async with db.pool.acquire() as conn:
        pending = await _pending_days(conn, month, end)
        rows = await _finalised_rows(conn, month, end)
    failed = False
    for part in parts:  # properties before events: the FK points from properties to events
        started = _utcnow()
        event_rows = rows if part.parent == repo.EVENT_PARENT else None
        if pending or failed:
            why = (
                f"kept: {len(pending)} days have no finalised, reconciled rollups (first {pending[0]})"
                if pending
                else "kept: dropping another partition of its month failed"
            )
            action = Action("drop_partition", part.name, event_rows, why, "skipped")
        else:
            action = Action(
                "drop_partition", part.name, event_rows, "past the raw window; every day finalised", "done"
            )
            drop = functools.partial(
                repo.detach_and_drop, partition=part, lock_timeout_ms=policy.lock_timeout_ms
            )
            try:
                await _in_transaction(db, policy, drop)
            except Exception as exc:  # retried next run; the month's other partition waits for it
                failed = True
                _failed(action, exc)
        actions.append(action)
        await _record(db, run_id, now, action, started)
    return actions


async def _do_policy(db: Database, now: dt.date, policy: RetentionPolicy, run_id: uuid.UUID) -> list[Action]:
    async with db.pool.acquire() as conn:
        months = await _old_months(conn, months_ago(now, policy.aggregate_after_months))
    actions = []
    for month, parts in months.items():
        started = _utcnow()
        try:
            actions += await _policy_month(db, now, policy, run_id, month, parts)
        except Exception as exc:  # one month that cannot be finalised must not stop the others
            action = _failed(Action("finalise_month", month_label(month), None, "finalise and drop"), exc)
            actions.append(action)
            await _record(db, run_id, now, action, started)
    return actions


async def _do_purge(db: Database, now: dt.date, policy: RetentionPolicy, run_id: uuid.UUID) -> list[Action]:
    cutoff = _midnight(months_ago(now, policy.log_retention_months))
    actions = []
    for table, column in repo.LOG_TABLES:
        started = _utcnow()
        action = Action("purge", table, 0, f"{column} before {cutoff.date().isoformat()}", "done")
        try:
            while True:  # one bounded batch per transaction: short locks, bounded WAL per commit
                async with db.transaction() as conn:
                    n = await repo.purge_batch(conn, table, column, cutoff, policy.purge_batch_size)
                action.rows = (action.rows or 0) + n
                if n < policy.purge_batch_size:
                    break
        except Exception as exc:  # the other tables are still purged
            _failed(action, exc)
        if action.rows or action.status == "failed":
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
