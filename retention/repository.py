"""SQL for partition upkeep and retention. Identifiers come from our own constants and dates only.

Every DDL here runs under a ``lock_timeout`` (the policy's 2 s; 200 ms for ``users``) so that a busy
table makes us wait briefly and retry, rather than queue ingest behind an ACCESS EXCLUSIVE lock request
for long. Partition DDL also locks ``users``, which the events' foreign key references, and writers lock
``users`` before the event tables: so a drop is two transactions (``detach``, then ``drop_detached``),
and the drop locks ``users`` before the table (``retention.jobs.detach_and_drop``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

import asyncpg

from kernel import events
from retention.errors import NotDetachedByRetention
from retention.schemas import Action, month_label

__all__ = [
    "DETACHED_MARK",
    "EVENT_PARENT",
    "PARENTS",
    "PROPERTY_PARENT",
    "OutOfWindow",
    "Partition",
    "count_actions_before",
    "default_months",
    "default_outside",
    "detach",
    "detached_leftovers",
    "drop_detached",
    "ensure_month",
    "finalised_rows",
    "list_partitions",
    "partition_name",
    "partition_rows",
    "purge_actions",
    "record_action",
    "scan_partitions",
]

EVENT_PARENT = "analytics_events"
PROPERTY_PARENT = "event_properties"
# Properties first: in the seed schema they reference events (migration 0003 drops that foreign key for
# COPY throughput, docs/schema.md), so they are moved and dropped before their events all the same.
PARENTS = (PROPERTY_PARENT, EVENT_PARENT)
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
# A bound Python can hold: a four-digit year (not BC, not beyond 9999), optionally a time of day.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)?")
# A timestamp as text for reports, for any value PostgreSQL can store (BC, beyond 9999, infinity):
# such rows are counted and shown, never decoded into Python (asyncpg cannot hold them).
_LABEL = (
    "coalesce(to_char({0}, 'YYYY-MM-DD HH24:MI:SS') || CASE WHEN {0} < '0001-01-01' THEN ' BC' ELSE '' END,"
    " {0}::text)"
)


@dataclass(frozen=True, slots=True)
class Partition:
    """A monthly partition: ``[start, end)``."""

    parent: str
    name: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True, slots=True)
class OutOfWindow:
    """Rows of the default partitions on one side of the upkeep window, described without decoding them."""

    before: bool  # before the window's first month (else after its last)
    events: int
    properties: int
    months: int  # distinct months among them
    first: str  # the earliest and latest timestamps, as PostgreSQL prints them
    last: str

    def action(self, first: dt.date, last: dt.date) -> Action:
        """The skipped ``out_of_window`` action reporting these rows against the window [first, last]."""
        side = f"before {month_label(first)}" if self.before else f"after {month_label(last)}"
        edge = "the oldest retained month" if self.before else "the last premade month"
        return Action(
            "out_of_window",
            side,
            self.events,
            f"{self.events} events and {self.properties} properties in {self.months} months ({self.first} .. "
            f"{self.last}) are in the default partitions, {side.split()[0]} {edge}: no partition is made for "
            "them; left where they are",
            "skipped",
        )


def partition_name(parent: str, month: dt.date) -> str:
    """``analytics_events_p2026_11`` for November 2026."""
    return f"{parent}_p{month.year:04d}_{month.month:02d}"


def _bound(text: str) -> dt.date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return None


async def scan_partitions(
    conn: asyncpg.Connection, parent: str
) -> tuple[list[Partition], list[tuple[str, str]]]:
    """The range partitions of ``parent`` (default excluded), oldest first, and the ones left alone.

    The second list holds (name, bound) of partitions whose bounds are not dates Python can hold
    (BC, beyond 9999, MINVALUE/MAXVALUE, infinity): upkeep reports them and never touches them.
    """
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass""",
        parent,
    )
    out = []
    odd = []
    for row in rows:
        bound: str = row["bound"]
        if bound == "DEFAULT":
            continue
        m = _BOUND.search(bound)
        start = _bound(m.group(1)) if m else None
        end = _bound(m.group(2)) if m else None
        if start is None or end is None:
            odd.append((row["relname"], bound))
        else:
            out.append(Partition(parent, row["relname"], start, end))
    return sorted(out, key=lambda p: p.start), sorted(odd)


async def list_partitions(conn: asyncpg.Connection, parent: str) -> list[Partition]:
    """The range partitions of ``parent`` with date bounds, oldest first (see :func:`scan_partitions`)."""
    return (await scan_partitions(conn, parent))[0]


async def default_months(conn: asyncpg.Connection, first: dt.date, last: dt.date) -> dict[dt.date, int]:
    """Months from ``first`` to ``last`` (inclusive) with rows in either default partition, with their
    event (or property) row counts. Rows outside those months are never decoded: see ``default_outside``."""
    lo, hi = _midnight(first), _midnight(_next_month(last))
    rows = await conn.fetch(
        f"""SELECT m, max(n) AS n FROM (
              SELECT date_trunc('month', "timestamp")::date AS m, count(*) AS n
              FROM {EVENT_PARENT}_default WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1
              UNION ALL
              SELECT date_trunc('month', "timestamp")::date, count(*)
              FROM {PROPERTY_PARENT}_default WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1
            ) s GROUP BY m ORDER BY m""",
        lo,
        hi,
    )
    return {r["m"]: r["n"] for r in rows}


async def default_outside(conn: asyncpg.Connection, first: dt.date, last: dt.date) -> list[OutOfWindow]:
    """Rows of the default partitions before ``first``'s month or after ``last``'s, counted in SQL."""
    lo, hi = _midnight(first), _midnight(_next_month(last))
    rows = await conn.fetch(
        f"""SELECT "timestamp" < $1 AS before, count(*) FILTER (WHERE t = 'e') AS events,
                   count(*) FILTER (WHERE t = 'p') AS properties,
                   count(DISTINCT date_trunc('month', "timestamp")) AS months,
                   {_LABEL.format('min("timestamp")')} AS first, {_LABEL.format('max("timestamp")')} AS last
            FROM (SELECT 'e' AS t, "timestamp" FROM {EVENT_PARENT}_default
                  WHERE NOT ("timestamp" >= $1 AND "timestamp" < $2)
                  UNION ALL
                  SELECT 'p', "timestamp" FROM {PROPERTY_PARENT}_default
                  WHERE NOT ("timestamp" >= $1 AND "timestamp" < $2)) s
            GROUP BY 1 ORDER BY 1 DESC""",
        lo,
        hi,
    )
    return [
        OutOfWindow(r["before"], r["events"], r["properties"], r["months"], r["first"], r["last"])
        for r in rows
    ]


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
    existing: set[str] = set()
    for parent in PARENTS:
        parts, odd = await scan_partitions(conn, parent)
        existing.update(p.name for p in parts)
        existing.update(name for name, _ in odd)
    created = False
    moved_events = 0
    for parent in PARENTS:  # properties first (PARENTS)
        child = partition_name(parent, month)
        if child in existing:
            continue
        created = True
        await conn.execute(f"CREATE TABLE {child} (LIKE {parent} INCLUDING ALL)")
        status = await conn.execute(
            f"""WITH moved AS (
                  DELETE FROM {parent}_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *)
                INSERT INTO {child} SELECT * FROM moved""",
            _midnight(start),
            _midnight(end),
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


# Marks a table ``detach`` detached, so that only such tables are ever dropped as leftovers.
DETACHED_MARK = "corp-astro retention: detached, to be dropped"  # interpolated in COMMENT ON: no quotes
# The wait for a lock on ``users`` while holding (or about to hold) a lock every login or flush needs:
# short, and retried with backoff by the caller, so that a slow request delays the drop, not the users.
_USERS_LOCK_TIMEOUT_MS = 200


async def _lock_referenced(conn: asyncpg.Connection, table: str, mode: str) -> None:
    """Lock the tables ``table``'s foreign keys reference (``users``), under the short users timeout."""
    referenced = await conn.fetchval(
        """SELECT coalesce(string_agg(DISTINCT confrelid::regclass::text, ', '), '')
           FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'""",
        table,
    )
    if referenced:
        await conn.execute(f"SET LOCAL lock_timeout = '{_USERS_LOCK_TIMEOUT_MS}ms'")
        await conn.execute(f"LOCK TABLE {referenced} IN {mode} MODE")


async def detach(conn: asyncpg.Connection, partition: Partition, *, lock_timeout_ms: int) -> None:
    """Detach one partition in the caller's transaction (metadata only: no row is deleted), and mark it.

    Plain DETACH is used because DETACH ... CONCURRENTLY is not allowed while a default partition
    exists. What it locks is locked beforehand, so that DETACH itself waits for nothing: ACCESS
    EXCLUSIVE on the parent, its default and the partition (under ``lock_timeout_ms``), then SHARE ROW
    EXCLUSIVE on ``users`` for the foreign key, under the short users timeout, because while that waits
    (on a login's open UPDATE of users, say) flushes queue behind the parent. The table is dropped by
    :func:`drop_detached` in a transaction of its own: dropping it needs ACCESS EXCLUSIVE on ``users``,
    and asked for while this transaction held the parent, that waited on flushes (which lock their users
    first) that waited on the parent: a deadlock.
    """
    await _set_lock_timeout(conn, lock_timeout_ms)
    tables = f"ONLY {partition.parent}, {partition.parent}_default, {partition.name}"
    await conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
    await _lock_referenced(conn, partition.name, "SHARE ROW EXCLUSIVE")
    await conn.execute(f"ALTER TABLE {partition.parent} DETACH PARTITION {partition.name}")
    await conn.execute(f"COMMENT ON TABLE {partition.name} IS '{DETACHED_MARK}'")


async def drop_detached(conn: asyncpg.Connection, parent: str, name: str, *, lock_timeout_ms: int) -> bool:
    """Drop a table :func:`detach` detached, in the caller's transaction; False if it is gone already.

    ``users`` (its foreign key's table) is locked first, with nothing else held: DROP TABLE would lock the
    table and then wait for ``users``, and an account erasure that had read its user could delete it
    meanwhile, its ``ON DELETE SET NULL`` then waiting for the table: a deadlock. A table with no
    foreign key (``event_properties``) waits under ``lock_timeout_ms``. Each users wait is short, and a
    flush holds its users lock until its commit, so under sustained ingest every attempt of a run can
    miss; the drop is then recorded failed and retried by the next day's run.
    """
    await _set_lock_timeout(conn, lock_timeout_ms)
    row = await conn.fetchrow(
        """SELECT relispartition, obj_description(oid, 'pg_class') AS mark
           FROM pg_class WHERE oid = to_regclass($1)""",
        name,
    )
    if row is None:
        return False
    if row["relispartition"] or row["mark"] != DETACHED_MARK:
        raise NotDetachedByRetention(f"{name} is not a table retention detached; not dropped")
    await _lock_referenced(conn, name, "ACCESS EXCLUSIVE")
    await conn.execute(f"DROP TABLE {name}")
    await events.emit(conn, "retention.partition_dropped", {"table": parent, "partition": name})
    return True


async def detached_leftovers(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(parent, name) of the tables :func:`detach` marked and detached that are still there: a drop
    stopped between its two transactions."""
    rows = await conn.fetch(
        """SELECT relname FROM pg_class
           WHERE relkind = 'r' AND NOT relispartition AND pg_table_is_visible(oid) AND relname ~ $1
             AND obj_description(oid, 'pg_class') = $2
           ORDER BY relname""",
        f"^({'|'.join(PARENTS)})_p[0-9]{{4}}_[0-9]{{2}}$",
        DETACHED_MARK,
    )
    return [(name.rsplit("_p", 1)[0], name) for name in (r["relname"] for r in rows)]


async def partition_rows(conn: asyncpg.Connection, partition: Partition) -> int:
    """The rows one partition holds (an exact count: ``plan`` shows what a drop would remove)."""
    n: int = await conn.fetchval(f'SELECT count(*) FROM "{partition.name}"')
    return n


async def finalised_rows(conn: asyncpg.Connection, start: dt.date, end: dt.date) -> int:
    """Raw events counted when the days in ``[start, end)`` were finalised (aggregation's ledger, read)."""
    n: int = await conn.fetchval(
        "SELECT coalesce(sum(raw_events), 0) FROM rollup_finalisations WHERE day >= $1 AND day < $2",
        start,
        end,
    )
    return n


async def count_actions_before(conn: asyncpg.Connection, cutoff: dt.datetime) -> int:
    """Ledger rows of actions started before ``cutoff``."""
    n: int = await conn.fetchval("SELECT count(*) FROM retention_actions WHERE started_at < $1", cutoff)
    return n


async def purge_actions(conn: asyncpg.Connection, cutoff: dt.datetime, limit: int) -> int:
    """Delete at most ``limit`` ledger rows of actions started before ``cutoff``; the number deleted."""
    # SKIP LOCKED: a row some other transaction holds is left for the next batch instead of waited for.
    status: str = await conn.execute(
        """DELETE FROM retention_actions WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM retention_actions WHERE started_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))""",
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


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())
