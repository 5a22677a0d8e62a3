"""Partition upkeep and the retention policy: what to do, and each step of doing it on a connection.

A run, in order: premake partitions and drain the default partitions; drop the partitions an earlier
run detached but stopped before dropping; finalise the rollups of months past the aggregation window;
drop raw partitions past the raw window, but only when every day in them has finalised, reconciled
rollups; purge logs and audit trails in bounded batches. The run itself (its single-runner lock and one
transaction per action, each recorded in ``retention_actions``) is driven by ``retention.jobs``: every
function here works inside the transaction its caller opened.

Upkeep makes partitions only for months inside its window (the retained months through the premade
ones), so client-supplied timestamps cannot make it create partitions: rows of the default partitions
outside the window, and partitions whose bounds are not dates, are reported as skipped and left alone.
One failing action is recorded as failed and the run carries on (docs/event-time-window.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aggregation
import integrations
from kernel import audit
from retention import repository as repo
from retention.schemas import Action, RetentionPolicy, add_months, month_label, month_start, upkeep_window

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "LEFTOVER_REASON",
    "LOG_TABLES",
    "LogTable",
    "drop_action",
    "failed",
    "finalise_result",
    "log_cutoff",
    "months_ago",
    "old_months",
    "pending_days",
    "plan_actions",
    "record",
    "upkeep_actions",
    "utcnow",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogTable:
    """A log or audit trail kept ``log_retention_months``: its owner counts and purges it (one owner per
    table); retention only decides when. ``name`` and ``column`` describe it in the plan and the ledger."""

    name: str
    column: str
    count: Callable[[asyncpg.Connection, dt.datetime], Awaitable[int]]
    purge: Callable[[asyncpg.Connection, dt.datetime, int], Awaitable[int]]


# Steps go before their executions (they reference them).
LOG_TABLES = (
    LogTable("audit_log", "created_at", audit.count_before, audit.purge_before),
    LogTable(
        "webhook_deliveries",
        "queued_at",
        integrations.count_webhook_deliveries_before,
        integrations.purge_webhook_deliveries,
    ),
    LogTable(
        "workflow_execution_steps",
        "started_at",
        integrations.count_workflow_execution_steps_before,
        integrations.purge_workflow_execution_steps,
    ),
    LogTable(
        "workflow_executions",
        "started_at",
        integrations.count_workflow_executions_before,
        integrations.purge_workflow_executions,
    ),
    LogTable("retention_actions", "started_at", repo.count_actions_before, repo.purge_actions),
)


def months_ago(now: dt.date, months: int) -> dt.date:
    """``now`` minus ``months`` calendar months, the day clamped to that month's length."""
    first = add_months(now, -months)
    last_day = (add_months(first, 1) - dt.timedelta(days=1)).day
    return first.replace(day=min(now.day, last_day))


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def log_cutoff(now: dt.date, policy: RetentionPolicy) -> dt.datetime:
    """Logs and audit trails older than this are purged."""
    return _midnight(months_ago(now, policy.log_retention_months))


def utcnow() -> dt.datetime:
    """Now, naive UTC (as the ledger stores it)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- What to do -----------------------------------------------------------------------------------


async def upkeep_actions(conn: asyncpg.Connection, now: dt.date, policy: RetentionPolicy) -> list[Action]:
    """Partitions to premake, default partitions to drain, and what upkeep reports and leaves alone."""
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


async def old_months(conn: asyncpg.Connection, cutoff: dt.date) -> dict[dt.date, list[repo.Partition]]:
    """Partitions of either table whose whole range ends on or before ``cutoff``, grouped by month."""
    months: dict[dt.date, list[repo.Partition]] = {}
    for parent in repo.PARENTS:  # properties first within each month
        for part in await repo.list_partitions(conn, parent):
            if part.end <= cutoff:
                months.setdefault(part.start, []).append(part)
    return dict(sorted(months.items()))


async def pending_days(conn: asyncpg.Connection, start: dt.date, end: dt.date) -> list[dt.date]:
    """Days in ``[start, end)`` whose rollups are not finalised yet."""
    done = await aggregation.finalised_days(conn, start, end - dt.timedelta(days=1))
    return [d for d in _days(start, end) if d not in done]


async def _purge_actions(conn: asyncpg.Connection, now: dt.date, policy: RetentionPolicy) -> list[Action]:
    cutoff = log_cutoff(now, policy)
    actions = []
    for log in LOG_TABLES:
        if rows := await log.count(conn, cutoff):
            actions.append(
                Action("purge", log.name, rows, f"{log.column} before {cutoff.date().isoformat()}")
            )
    return actions


async def _month_plan(
    conn: asyncpg.Connection, month: dt.date, parts: list[repo.Partition], raw_cutoff: dt.date
) -> list[Action]:
    end = parts[0].end
    pending = await pending_days(conn, month, end)
    actions = []
    if pending:
        why = f"{len(pending)} of {(end - month).days} days to roll up and reconcile"
        actions.append(Action("finalise_month", month_label(month), None, why))
    if end <= raw_cutoff:
        why = "past the raw window; every day finalised"
        if pending:
            why = f"past the raw window; dropped only if its {len(pending)} pending days reconcile"
        finalised = await repo.finalised_rows(conn, month, end)
        for part in parts:
            # The raw rows the drop would remove, beside what the rollups counted for the month's events.
            raw = await repo.partition_rows(conn, part)
            counted = f"; {finalised:,} events finalised" if part.parent == repo.EVENT_PARENT else ""
            actions.append(Action("drop_partition", part.name, raw, why + counted))
    return actions


LEFTOVER_REASON = "detached by an earlier run that stopped before dropping it"


async def plan_actions(conn: asyncpg.Connection, now: dt.date, policy: RetentionPolicy) -> list[Action]:
    """Everything a run at ``now`` would do, with row counts and reasons. Reads only."""
    actions = await upkeep_actions(conn, now, policy)
    for _, name in await repo.detached_leftovers(conn):
        actions.append(Action("drop_partition", name, None, LEFTOVER_REASON))
    raw_cutoff = months_ago(now, policy.raw_retention_months)
    for month, parts in (await old_months(conn, months_ago(now, policy.aggregate_after_months))).items():
        actions += await _month_plan(conn, month, parts, raw_cutoff)
    actions.extend(await _purge_actions(conn, now, policy))
    return actions


# --- Doing it ------------------------------------------------------------------------------------


async def record(
    conn: asyncpg.Connection, run_id: uuid.UUID, now: dt.date, action: Action, started: dt.datetime
) -> None:
    """Append ``action`` (as it ended) to the ledger."""
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


def failed(action: Action, exc: Exception) -> Action:
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


def finalise_result(month: dt.date, pending: int, failures: list[str], rows: int) -> Action:
    """The finalise action of a month whose ``pending`` days were rolled up, ``failures`` of them not."""
    if failures:
        why = f"{len(failures)} days did not reconcile ({'; '.join(failures[:3])})"
        return Action("finalise_month", month_label(month), rows, why, "failed")
    return Action(
        "finalise_month", month_label(month), rows, f"{pending} days rolled up and reconciled", "done"
    )


def drop_action(part: repo.Partition, rows: int, pending: list[dt.date], sibling_failed: bool) -> Action:
    """Whether to drop ``part``: ``done`` (to be dropped) only when every day of its month is finalised
    and no other partition of the month failed to drop; else ``skipped`` with the reason."""
    event_rows = rows if part.parent == repo.EVENT_PARENT else None
    if pending:
        why = f"kept: {len(pending)} days have no finalised, reconciled rollups (first {pending[0]})"
        return Action("drop_partition", part.name, event_rows, why, "skipped")
    if sibling_failed:
        why = "kept: dropping another partition of its month failed"
        return Action("drop_partition", part.name, event_rows, why, "skipped")
    return Action("drop_partition", part.name, event_rows, "past the raw window; every day finalised", "done")
