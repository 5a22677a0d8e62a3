"""The exactly-once ledger (``ingest_message_ids``), one partition per arrival week.

A flush records each new message's key (uuid5 of its source and messageId) in the partition of its
transaction's week (``week``: the Monday of the database's UTC date when the flush's first statement ran,
``begin``; never a server's clock, so every process agrees). It reads the previous week's partition for
the rest of the dedupe window (``begin``); a week past the window is dropped whole by partition upkeep
(``keep_partitions``, run by retention's upkeep), never deleted row by row.

Why weeks and not days: a flush must look every id up in each partition of the window it does not
write to. With a partition a day that was 7 index probes per event, about 20 us of PostgreSQL CPU per
event once each day held 500,000 claims (about what the old single ledger's insert and its hourly prune
cost together); with weeks it is one probe (docs/ingest.md, "Exactly once across weeks").

Why a retry is stored once, across partitions:

- Two transactions of the same week meet in that week's unique index: the second waits for the first
  and, if it committed, sees a duplicate.
- A transaction sees every transaction of an earlier week that committed before its statement began
  (``begin``). The only ones it could miss were still running when its week began.
- A flush transaction lasts less than ``GRACE`` (``begin`` bounds every statement and every pause
  server-side), so a transaction still running after a week began started in the week before, and
  overlaps only the transactions that begin in the new week's first ``GRACE``. Those claim in the
  previous week's partition too: the two meet in its unique index.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ingest.models import IngestMessageId
from kernel.settings import get_settings

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "GRACE",
    "Begun",
    "LedgerUpkeep",
    "begin",
    "claim",
    "claim_weeks",
    "copy_claims",
    "keep_partitions",
    "partition_name",
    "upkeep",
    "week_of",
]

_LEDGER = IngestMessageId.__tablename__
_C = IngestMessageId.__table__.c
_COLUMNS = (_C.message_key.name, _C.week.name)
_DEFAULT = f"{_LEDGER}_default"
_NAME = re.compile(rf"{_LEDGER}_p([0-9]{{4}})_([0-9]{{2}})_([0-9]{{2}})")
_WEEK = dt.timedelta(days=7)

# Week partitions made ahead by each upkeep (it runs hourly; even without it a week's claims land in
# the default partition, still deduplicated, and move into their partition when upkeep makes it).
AHEAD_WEEKS = 2
# Transactions that begin this long after a week's start also claim in the previous week's partition.
GRACE = dt.timedelta(hours=1)
# The server-side bounds that keep a flush transaction under GRACE. After ``begin`` it has at most 5
# statements (two COPY or two INSERT claims, two COPYs of rows, COMMIT) of at most _MAX_STATEMENT_S
# each, with at most _IDLE_S between them: 5 x (180 + 60) s = 20 min < 1 h. A claim that meets a
# duplicate ends the transaction; the flush starts over in a new one, with its own ``begin``.
_MAX_STATEMENT_S = 180
_IDLE_S = 60
# A flush's backend asks the kernel to write the data pages it writes out at once, every 256 kB
# (PostgreSQL's ``backend_flush_after``, off by default on Linux), rather than leave them dirty in the
# page cache: the kernel writes a file's dirty pages out together 30 s later, hundreds of MB at a time on
# this load, and every commit's WAL flush waits behind that write (200-300 ms stalls; docs/ingest.md).
_FLUSH_AFTER = "256kB"

# The flush's first statement: its server-side bounds, its start (the claims' week; a test may give it),
# the ids already claimed from the week holding the day ``window`` days back up to, not including, the
# first week this transaction claims in (its own, or in a week's first GRACE the one before), and the
# users among the events' user_id candidates, locked. A join of the ids to the ledger: the planner probes
# each partition's index per id (with ``= ANY`` of a 2,000-id array it chose parallel sequential scans of
# every partition). FOR KEY SHARE is the lock a foreign-key check takes: such a users row cannot be
# deleted (or its key changed) until the flush commits, and a user deleted before it is simply not found.
# The users table is core_api's, named literally so that this declared read of another domain's table
# stays visible to the ownership check (tests/unit/test_architecture.py).
_BEGIN = f"""
WITH t AS (SELECT coalesce($5::timestamp, statement_timestamp() AT TIME ZONE 'UTC') AS ts)
SELECT set_config('statement_timeout', $1, true), set_config('idle_in_transaction_session_timeout', $2, true),
       set_config('backend_flush_after', '{_FLUSH_AFTER}', true),
       t.ts,
       ARRAY(SELECT l.{_C.message_key.name} FROM unnest($3::uuid[]) AS u(id) JOIN {_LEDGER} l ON l.{_C.message_key.name} = u.id
             WHERE l.{_C.week.name} >= date_trunc('week', t.ts - make_interval(days => $4))::date
               AND l.{_C.week.name} < date_trunc('week', t.ts)::date
                   - CASE WHEN t.ts - date_trunc('week', t.ts) < $6::interval THEN 7 ELSE 0 END),
       ARRAY(SELECT user_id FROM users WHERE user_id = ANY($7::uuid[]) FOR KEY SHARE)
FROM t
"""
# Sorted input: two transactions claiming overlapping ids wait for each other in the same order.
_CLAIM = f"""
INSERT INTO {_LEDGER} ({_C.message_key.name}, {_C.week.name})
SELECT id, $2 FROM unnest($1::uuid[]) AS t(id) ORDER BY id
ON CONFLICT ({_C.message_key.name}, {_C.week.name}) DO NOTHING
RETURNING {_C.message_key.name}
"""


def week_of(day: dt.date) -> dt.date:
    """The Monday of ``day``'s ISO week (PostgreSQL's ``date_trunc('week', ...)``)."""
    return day - dt.timedelta(days=day.weekday())


class Begun(NamedTuple):
    """What a flush's first statement (``begin``) found."""

    # When the statement began (naive UTC): the claims' week.
    started: dt.datetime
    # The ids already claimed (and committed) in the window's earlier weeks.
    seen: set[Any]
    # The users among the candidates, locked FOR KEY SHARE until the transaction ends.
    known_users: set[Any]


async def begin(
    conn: asyncpg.Connection,
    ids: Sequence[Any],
    window_days: int,
    statement_timeout: float,
    at: dt.datetime | None = None,
    users: Sequence[Any] = (),
) -> Begun:
    """First statement of a flush transaction, one round trip: bound the transaction server-side, note
    when this statement began (``at`` instead, in tests), find which of ``ids`` were claimed in the
    window's earlier weeks (those ``claim_weeks`` does not claim in), and lock the users among ``users``.

    Every later statement ends within ``min(statement_timeout, 180 s)`` and no pause lasts over 60 s,
    or PostgreSQL ends the transaction: what keeps a flush shorter than ``GRACE``. The start is this
    statement's, not the transaction's: a pause after BEGIN and before it claims nothing.
    """
    limit_ms = int(min(statement_timeout, _MAX_STATEMENT_S) * 1000)
    row = await conn.fetchrow(
        _BEGIN,
        f"{limit_ms}ms",
        f"{_IDLE_S}s",
        ids,
        window_days,
        at,
        GRACE,
        users,
        timeout=statement_timeout,
    )
    return Begun(row[3], set(row[4]), set(row[5]))


def claim_weeks(started: dt.datetime) -> tuple[dt.date, ...]:
    """The partitions a transaction begun at ``started`` claims in: its week, and in the week's first
    ``GRACE`` the previous week too (its own first, so every transaction takes them in the same order)."""
    week = week_of(started.date())
    if started - dt.datetime.combine(week, dt.time()) < GRACE:
        return (week, week - _WEEK)
    return (week,)


async def copy_claims(conn: asyncpg.Connection, ids: Sequence[Any], week: dt.date, timeout: float) -> None:
    """Record ``ids`` (sorted) under ``week`` by binary COPY (the cheap path: duplicates are rare).
    Sorted, so two transactions claiming overlapping ids wait for each other in the same order.

    Raises ``UniqueViolationError`` if one was recorded that week before, committed or not; that aborts
    the transaction, and the caller starts over with ``claim``.
    """
    await conn.copy_records_to_table(
        _LEDGER, records=[(i, week) for i in ids], columns=_COLUMNS, timeout=timeout
    )


async def claim(conn: asyncpg.Connection, ids: Sequence[Any], week: dt.date, timeout: float) -> set[Any]:
    """Record ``ids`` under ``week``; the ones that were new that week. A concurrent transaction holding
    one makes this wait for it: if it commits, the id is not new here; if it rolls back, it is."""
    rows = await conn.fetch(_CLAIM, sorted(ids), week, timeout=timeout)
    return {r[0] for r in rows}


# --- Partition upkeep (run by retention's upkeep, in its transactions) ------------------------------


@dataclass(slots=True)
class LedgerUpkeep:
    """What one upkeep did: partitions made and dropped, rows moved out of and expired from the default."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved: int = 0
    expired: int = 0


def partition_name(week: dt.date) -> str:
    """``ingest_message_ids_p2026_11_30`` for the week of Monday 30 November 2026."""
    return f"{_LEDGER}_p{week.year:04d}_{week.month:02d}_{week.day:02d}"


async def _weeks(conn: asyncpg.Connection) -> dict[dt.date, str]:
    """The ledger's week partitions (named by ``partition_name``; any other is left alone)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
        _LEDGER,
    )
    out = {}
    for r in rows:
        if m := _NAME.fullmatch(r[0]):
            out[dt.date(int(m[1]), int(m[2]), int(m[3]))] = r[0]
    return out


async def _create(conn: asyncpg.Connection, week: dt.date) -> int:
    """Make ``week``'s partition, moving its rows out of the default partition; the rows moved."""
    child, end = partition_name(week), week + _WEEK
    col = _C.week.name
    await conn.execute(f"LOCK TABLE {_DEFAULT} IN EXCLUSIVE MODE")
    await conn.execute(f"CREATE TABLE {child} (LIKE {_LEDGER} INCLUDING ALL)")
    status = await conn.execute(
        f"""WITH moved AS (DELETE FROM {_DEFAULT} WHERE {col} >= $1 AND {col} < $2 RETURNING *)
            INSERT INTO {child} SELECT * FROM moved""",
        week,
        end,
    )
    # A CHECK equal to the bounds lets ATTACH skip scanning the new table.
    check = f"{child}_bounds"
    await conn.execute(
        f"ALTER TABLE {child} ADD CONSTRAINT {check} CHECK ({col} >= '{week}' AND {col} < '{end}')"
    )
    await conn.execute(
        f"ALTER TABLE {_LEDGER} ATTACH PARTITION {child} FOR VALUES FROM ('{week}') TO ('{end}')"
    )
    await conn.execute(f"ALTER TABLE {child} DROP CONSTRAINT {check}")
    return int(status.split()[-1])


async def keep_partitions(
    conn: asyncpg.Connection, *, window_days: int, ahead_weeks: int, lock_timeout_ms: int
) -> LedgerUpkeep:
    """Week partitions from the one holding the day before the dedupe window through ``ahead_weeks``
    ahead; the older ones dropped whole.

    Runs in the caller's transaction, under ``lock_timeout`` (a busy ledger makes it give up and be
    retried rather than queue flushes behind it). Weeks follow the database's UTC date, like the claims.
    """
    await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
    today: dt.date = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    # A day more than the window read by flushes, so that no flush reads a week being dropped.
    keep_from = week_of(today - dt.timedelta(days=window_days + 1))
    done = LedgerUpkeep()
    have = await _weeks(conn)
    week = keep_from
    while week <= week_of(today) + ahead_weeks * _WEEK:
        if week not in have:
            done.moved += await _create(conn, week)
            done.created.append(partition_name(week))
        week += _WEEK
    for week, name in sorted(have.items()):
        if week < keep_from:
            await conn.execute(f"ALTER TABLE {_LEDGER} DETACH PARTITION {name}")
            await conn.execute(f"DROP TABLE {name}")
            done.dropped.append(name)
    status = await conn.execute(f"DELETE FROM {_DEFAULT} WHERE {_C.week.name} < $1", keep_from)
    done.expired = int(status.split()[-1])
    return done


async def upkeep(conn: asyncpg.Connection, *, lock_timeout_ms: int) -> LedgerUpkeep:
    """``keep_partitions`` for this process's dedupe window (``CORP_ASTRO_INGEST_DEDUPE_DAYS``)."""
    window = get_settings().ingest.dedupe_days
    return await keep_partitions(
        conn, window_days=window, ahead_weeks=AHEAD_WEEKS, lock_timeout_ms=lock_timeout_ms
    )
