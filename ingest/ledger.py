"""The exactly-once ledger (``ingest_message_ids``), one partition per arrival day.

A flush records each new event id in the partition of its transaction's day: the database's UTC date
when the transaction began (``begin``), never a server's clock, so every process agrees. Today's
partition is small and stays cached; the earlier days of the window are only read (``seen_before``);
a day past the window is dropped whole by partition upkeep (``keep_partitions``, run by retention's
upkeep), never deleted row by row.

Why a retry is stored once, across partitions (docs/ingest.md, "Exactly once"):

- Two transactions of the same day meet in that day's unique index: the second waits for the first
  and, if it committed, sees a duplicate.
- A transaction of day D sees every transaction of an earlier day that committed before its
  statement began (``seen_before``). The only ones it could miss were still running when D began.
- A flush transaction lasts less than ``GRACE`` (``begin`` bounds every statement and every pause
  server-side), so a transaction still running after D began started on D-1, and overlaps only the
  transactions that begin in D's first ``GRACE``. Those claim in D-1's partition too: the two meet in
  D-1's unique index.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest.models import IngestMessageId
from kernel.settings import get_settings

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "GRACE",
    "LedgerUpkeep",
    "begin",
    "claim",
    "claim_days",
    "copy_claims",
    "keep_partitions",
    "partition_name",
    "seen_before",
    "upkeep",
]

_LEDGER = IngestMessageId.__tablename__
_C = IngestMessageId.__table__.c
_COLUMNS = (_C.event_id.name, _C.day.name)
_DEFAULT = f"{_LEDGER}_default"
_NAME = re.compile(rf"{_LEDGER}_p([0-9]{{4}})_([0-9]{{2}})_([0-9]{{2}})")

# Day partitions made ahead by each upkeep (it runs hourly: a week without upkeep before a day has none,
# and even then its claims land in the default partition, still deduplicated).
AHEAD_DAYS = 7
# Transactions that begin this long after midnight also claim in the previous day's partition.
GRACE = dt.timedelta(hours=1)
# The server-side bounds that keep a flush transaction under GRACE. After ``begin`` it has at most 11
# statements (the older days; a savepoint, two COPY claims, then its release, or a rollback to it and two
# INSERT claims; the users lock, two COPYs; COMMIT) of at most _MAX_STATEMENT_S each, with at most
# _IDLE_S between them: 11 x (180 + 60) s = 44 min < 1 h.
_MAX_STATEMENT_S = 180
_IDLE_S = 60

_BEGIN = (
    "SELECT set_config('statement_timeout', $1, true), "
    "set_config('idle_in_transaction_session_timeout', $2, true), statement_timestamp() AT TIME ZONE 'UTC'"
)
_SEEN = f"""SELECT {_C.event_id.name} FROM {_LEDGER}
            WHERE {_C.day.name} >= $2 AND {_C.day.name} < $3 AND {_C.event_id.name} = ANY($1::uuid[])"""
# Sorted input: two transactions claiming overlapping ids wait for each other in the same order.
_CLAIM = f"""
INSERT INTO {_LEDGER} ({_C.event_id.name}, {_C.day.name})
SELECT id, $2 FROM unnest($1::uuid[]) AS t(id) ORDER BY id
ON CONFLICT ({_C.event_id.name}, {_C.day.name}) DO NOTHING
RETURNING {_C.event_id.name}
"""


async def begin(conn: asyncpg.Connection, statement_timeout: float) -> dt.datetime:
    """First statement of a flush transaction: bound it server-side; when this statement began (naive UTC):
    the transaction's start for the ledger (a pause after BEGIN and before it claims nothing).

    Every later statement ends within ``min(statement_timeout, 180 s)`` and no pause lasts over 60 s,
    or PostgreSQL ends the transaction: what keeps a flush shorter than ``GRACE``.
    """
    limit_ms = int(min(statement_timeout, _MAX_STATEMENT_S) * 1000)
    row = await conn.fetchrow(_BEGIN, f"{limit_ms}ms", f"{_IDLE_S}s", timeout=statement_timeout)
    started: dt.datetime = row[2]
    return started


def claim_days(started: dt.datetime) -> tuple[dt.date, ...]:
    """The partitions a transaction begun at ``started`` claims in: its day, and in the day's first
    ``GRACE`` the previous day too (today first: every transaction takes them in the same order)."""
    day = started.date()
    if started - dt.datetime.combine(day, dt.time()) < GRACE:
        return (day, day - dt.timedelta(days=1))
    return (day,)


async def seen_before(
    conn: asyncpg.Connection, ids: Sequence[Any], first: dt.date, before: dt.date, timeout: float
) -> set[Any]:
    """The ids of ``ids`` recorded (and committed) on a day from ``first`` up to, not including, ``before``."""
    if not ids:
        return set()
    rows = await conn.fetch(_SEEN, ids, first, before, timeout=timeout)
    return {r[0] for r in rows}


async def copy_claims(conn: asyncpg.Connection, ids: Sequence[Any], day: dt.date, timeout: float) -> None:
    """Record sorted ``ids`` under ``day`` by binary COPY (the cheap path: duplicates are rare).

    Raises ``UniqueViolationError`` if one was recorded that day before, committed or not; the caller
    then rolls the transaction back and uses ``claim``.
    """
    await conn.copy_records_to_table(
        _LEDGER, records=[(i, day) for i in ids], columns=_COLUMNS, timeout=timeout
    )


async def claim(conn: asyncpg.Connection, ids: Sequence[Any], day: dt.date, timeout: float) -> set[Any]:
    """Record ``ids`` under ``day``; the ones that were new that day. A concurrent transaction holding
    one makes this wait for it: if it commits, the id is not new here; if it rolls back, it is."""
    rows = await conn.fetch(_CLAIM, sorted(ids), day, timeout=timeout)
    return {r[0] for r in rows}


# --- Partition upkeep (run by retention's upkeep, in its transactions) ------------------------------


@dataclass(slots=True)
class LedgerUpkeep:
    """What one upkeep did: partitions made and dropped, rows moved out of and expired from the default."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved: int = 0
    expired: int = 0


def partition_name(day: dt.date) -> str:
    """``ingest_message_ids_p2026_12_01`` for 1 December 2026."""
    return f"{_LEDGER}_p{day.year:04d}_{day.month:02d}_{day.day:02d}"


async def _days(conn: asyncpg.Connection) -> dict[dt.date, str]:
    """The ledger's day partitions (named by ``partition_name``; any other is left alone)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
        _LEDGER,
    )
    out = {}
    for r in rows:
        if m := _NAME.fullmatch(r[0]):
            out[dt.date(int(m[1]), int(m[2]), int(m[3]))] = r[0]
    return out


async def _create(conn: asyncpg.Connection, day: dt.date) -> int:
    """Make ``day``'s partition, moving its rows out of the default partition; the rows moved."""
    child, end = partition_name(day), day + dt.timedelta(days=1)
    await conn.execute(f"LOCK TABLE {_DEFAULT} IN EXCLUSIVE MODE")
    await conn.execute(f"CREATE TABLE {child} (LIKE {_LEDGER} INCLUDING ALL)")
    status = await conn.execute(
        f"""WITH moved AS (DELETE FROM {_DEFAULT} WHERE {_C.day.name} = $1 RETURNING *)
            INSERT INTO {child} SELECT * FROM moved""",
        day,
    )
    # A CHECK equal to the bounds lets ATTACH skip scanning the new table.
    check = f"{child}_bounds"
    await conn.execute(f"ALTER TABLE {child} ADD CONSTRAINT {check} CHECK (day >= '{day}' AND day < '{end}')")
    await conn.execute(
        f"ALTER TABLE {_LEDGER} ATTACH PARTITION {child} FOR VALUES FROM ('{day}') TO ('{end}')"
    )
    await conn.execute(f"ALTER TABLE {child} DROP CONSTRAINT {check}")
    return int(status.split()[-1])


async def keep_partitions(
    conn: asyncpg.Connection, *, window_days: int, ahead_days: int, lock_timeout_ms: int
) -> LedgerUpkeep:
    """Partitions from one day before the dedupe window through ``ahead_days`` ahead; older ones dropped.

    Runs in the caller's transaction, under ``lock_timeout`` (a busy ledger makes it give up and be
    retried rather than queue flushes behind it). Days are the database's UTC dates, like the claims'.
    """
    await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
    today: dt.date = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    # One day more than the window read by seen_before: a claim made just before midnight stays
    # findable for the whole window whichever day's clock reads it.
    keep_from = today - dt.timedelta(days=window_days + 1)
    done = LedgerUpkeep()
    have = await _days(conn)
    for day in (keep_from + dt.timedelta(days=n) for n in range((today - keep_from).days + ahead_days + 1)):
        if day not in have:
            done.moved += await _create(conn, day)
            done.created.append(partition_name(day))
    for day, name in sorted(have.items()):
        if day < keep_from:
            await conn.execute(f"ALTER TABLE {_LEDGER} DETACH PARTITION {name}")
            await conn.execute(f"DROP TABLE {name}")
            done.dropped.append(name)
    status = await conn.execute(f"DELETE FROM {_DEFAULT} WHERE {_C.day.name} < $1", keep_from)
    done.expired = int(status.split()[-1])
    return done


async def upkeep(conn: asyncpg.Connection, *, lock_timeout_ms: int) -> LedgerUpkeep:
    """``keep_partitions`` for this process's dedupe window (``CORP_ASTRO_INGEST_DEDUPE_DAYS``)."""
    window = get_settings().ingest.dedupe_days
    return await keep_partitions(
        conn, window_days=window, ahead_days=AHEAD_DAYS, lock_timeout_ms=lock_timeout_ms
    )
