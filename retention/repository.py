"""SQL for partition upkeep and retention. Identifiers come from our own constants and dates only.

Every DDL here runs under a short ``lock_timeout`` so that a busy table makes us wait briefly and retry,
instead of queueing ingest behind an ACCESS EXCLUSIVE lock request.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

import asyncpg

__all__ = [
    "EVENT_PARENT",
    "LOG_TABLES",
    "PROPERTY_PARENT",
    "Partition",
    "count_older",
    "default_months",
    "detach_and_drop",
    "ensure_month",
    "list_partitions",
    "partition_name",
    "purge_batch",
    "record_action",
]

EVENT_PARENT = "analytics_events"
PROPERTY_PARENT = "event_properties"
# Properties first: they reference events, so they are moved and dropped before their events.
PARENTS = (PROPERTY_PARENT, EVENT_PARENT)
# Logs and audit trails kept 6 months: (table, time column). Steps go before their executions.
LOG_TABLES = (
    ("audit_log", "created_at"),
    ("webhook_deliveries", "queued_at"),
    ("workflow_execution_steps", "started_at"),
    ("workflow_executions", "started_at"),
    ("retention_actions", "started_at"),
)
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """A monthly partition: ``[start, end)``."""

    parent: str
    name: str
    start: dt.date
    end: dt.date


def partition_name(parent: str, month: dt.date) -> str:
    """``analytics_events_p2026_11`` for November 2026."""
    return f"{parent}_p{month:%Y_%m}"


async def list_partitions(conn: asyncpg.Connection, parent: str) -> list[Partition]:
    """The range partitions of ``parent`` (the default partition excluded), oldest first."""
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass""",
        parent,
    )
    out = []
    for row in rows:
        m = _BOUND.search(row["bound"])
        if m:
            start = dt.datetime.fromisoformat(m.group(1)).date()
            end = dt.datetime.fromisoformat(m.group(2)).date()
            out.append(Partition(parent, row["relname"], start, end))
    return sorted(out, key=lambda p: p.start)


async def default_months(conn: asyncpg.Connection) -> dict[dt.date, int]:
    """Months that have rows in either default partition, with their event (or property) row counts."""
    rows = await conn.fetch(
        f"""SELECT m, max(n) AS n FROM (
              SELECT date_trunc('month', "timestamp")::date AS m, count(*) AS n
              FROM {EVENT_PARENT}_default GROUP BY 1
              UNION ALL
              SELECT date_trunc('month', "timestamp")::date, count(*) FROM {PROPERTY_PARENT}_default GROUP BY 1
            ) s GROUP BY m ORDER BY m"""
    )
    return {r["m"]: r["n"] for r in rows}


async def _set_lock_timeout(conn: asyncpg.Connection, lock_timeout_ms: int) -> None:
    await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")


async def ensure_month(conn: asyncpg.Connection, month: dt.date, *, lock_timeout_ms: int) -> tuple[bool, int]:
    """Create ``month``'s partitions of both tables, moving any rows for it out of the default partitions.

    Runs inside the caller's transaction. Each table is built standalone (``LIKE parent INCLUDING ALL``,
    so its indexes are built before it joins), filled from the default partition by one
    ``DELETE ... RETURNING`` statement (a row is either moved or stays, never lost), given a CHECK
    constraint equal to its bounds (so ATTACH need not scan it) and then attached. ATTACH takes only
    SHARE UPDATE EXCLUSIVE on the parent, so ingest into other partitions continues; inserts routed to
    the default partitions wait for this transaction. Returns (created, event rows moved).
    """
    start, end = month, _next_month(month)
    await _set_lock_timeout(conn, lock_timeout_ms)
    # Lock both defaults up front (events first, the order ingest writes in) so that no row for this
    # month can land in a default between our move and our attach.
    await conn.execute(f"LOCK TABLE {EVENT_PARENT}_default, {PROPERTY_PARENT}_default IN EXCLUSIVE MODE")
    existing = {p.name for parent in PARENTS for p in await list_partitions(conn, parent)}
    created = False
    moved_events = 0
    for parent in PARENTS:  # properties first: they reference events
        child = partition_name(parent, month)
        if child in existing:
            continue
        created = True
        await conn.execute(f"CREATE TABLE {child} (LIKE {parent} INCLUDING ALL)")
        status = await conn.execute(
            f"""WITH moved AS (
                  DELETE FROM {parent}_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *)
                INSERT INTO {child} SELECT * FROM moved""",
            dt.datetime.combine(start, dt.time()),
            dt.datetime.combine(end, dt.time()),
        )
        if parent == EVENT_PARENT:
            moved_events = int(status.split()[-1])
    for parent in (EVENT_PARENT, PROPERTY_PARENT):  # events must be attached before properties' FK check
        child = partition_name(parent, month)
        if child in existing:
            continue
        check = f"{child}_bounds"
        await conn.execute(
            f"""ALTER TABLE {child} ADD CONSTRAINT {check}
                CHECK ("timestamp" >= '{start}' AND "timestamp" < '{end}')"""
        )
        await conn.execute(
            f"ALTER TABLE {parent} ATTACH PARTITION {child} FOR VALUES FROM ('{start}') TO ('{end}')"
        )
        await conn.execute(f"ALTER TABLE {child} DROP CONSTRAINT {check}")
    return created, moved_events


async def detach_and_drop(conn: asyncpg.Connection, partition: Partition, *, lock_timeout_ms: int) -> None:
    """Detach and drop one partition in the caller's transaction (metadata only: no row is deleted).

    Plain DETACH is used because DETACH ... CONCURRENTLY is not allowed while a default partition
    exists; the brief ACCESS EXCLUSIVE lock it needs is bounded by the lock timeout and retried.
    """
    await _set_lock_timeout(conn, lock_timeout_ms)
    await conn.execute(f"ALTER TABLE {partition.parent} DETACH PARTITION {partition.name}")
    await conn.execute(f"DROP TABLE {partition.name}")


async def count_older(conn: asyncpg.Connection, table: str, column: str, cutoff: dt.datetime) -> int:
    """Rows of ``table`` whose ``column`` is before ``cutoff``."""
    n: int = await conn.fetchval(f'SELECT count(*) FROM {table} WHERE "{column}" < $1', cutoff)
    return n


async def purge_batch(
    conn: asyncpg.Connection, table: str, column: str, cutoff: dt.datetime, limit: int
) -> int:
    """Delete at most ``limit`` rows older than ``cutoff``; the number deleted."""
    status = await conn.execute(
        f"""DELETE FROM {table} WHERE ctid = ANY(ARRAY(
              SELECT ctid FROM {table} WHERE "{column}" < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))""",
        cutoff,
        limit,
    )
    return int(status.split()[-1])


async def record_action(
    conn: asyncpg.Connection,
    *,
    run_id: uuid.UUID,
    policy_now: dt.datetime,
    action: str,
    target: str,
    status: str,
    rows: int | None,
    reason: str,
    started_at: dt.datetime,
) -> None:
    """Append one ledger row."""
    await conn.execute(
        """INSERT INTO retention_actions
             (run_id, action, target, status, rows, reason, policy_now, started_at, finished_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (now() AT TIME ZONE 'UTC'))""",
        run_id,
        action,
        target,
        status,
        rows,
        reason,
        policy_now,
        started_at,
    )


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
