"""Statements on the per-unit metric state (asyncpg): ``experiment_unit_values`` and its marks.

The SQL is built by ``experiments.unit_state_sql``; ``analytics_events``, ``event_properties`` (ingest's)
and the experiment's assignments and links are only read. docs/experiments-metrics.md.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from experiments.unit_state_sql import Layout, delete_relinked_sql, fold_sql, read_sql, read_users_sql

__all__ = [
    "Fold",
    "analyze",
    "delete_values",
    "fetch_mark",
    "fold",
    "horizon",
    "read_sums",
    "save_mark",
]


@dataclass(frozen=True, slots=True)
class Fold:
    """One experiment's fold: its test, unit, parts, event bound and lookback, and the ingestion times
    ``lo`` (None: every event, a rebuild) to ``hi`` (None: no bound)."""

    test_id: uuid.UUID
    unit: str
    layout: Layout
    until: dt.datetime
    history: int
    lo: dt.datetime | None
    hi: dt.datetime | None

    def args(self) -> list[object]:
        parts = self.layout.parts
        names = sorted({p.event for p in parts if p.event})
        return [self.test_id, names, self.lo, self.until, self.history, *(p.event for p in parts), self.hi]


async def fetch_mark(conn: asyncpg.Connection, test_id: uuid.UUID) -> asyncpg.Record | None:
    """The definition the test's state is for, how far it has read, and how long ago that was (``lag``)."""
    return await conn.fetchrow(
        """SELECT definition, ingested_through, LOCALTIMESTAMP - ingested_through AS lag
           FROM experiment_unit_value_marks WHERE test_id = $1""",
        test_id,
    )


async def horizon(conn: asyncpg.Connection) -> dt.datetime:
    """The ingestion time up to which every event is visible to this transaction's next statements.

    ``analytics_events.created_at`` is its inserting transaction's start time, so an event committed
    later can carry an earlier ``created_at``. None can below the start of the oldest transaction still
    open on this database (this one's included): reading up to there misses nothing and re-reads
    nothing. The first statement of a READ COMMITTED transaction (pg_stat_activity is read once per
    transaction); sessions of other roles are seen only with pg_read_all_stats.
    """
    at: dt.datetime = await conn.fetchval(
        """SELECT least(LOCALTIMESTAMP, (
               SELECT min(xact_start) FROM pg_stat_activity
               WHERE datname = current_database() AND backend_type = 'client backend'
           ) AT TIME ZONE current_setting('TimeZone'))"""
    )
    return at


async def delete_values(conn: asyncpg.Connection, test_id: uuid.UUID) -> None:
    """Drop the test's state (before a rebuild)."""
    await conn.execute("DELETE FROM experiment_unit_values WHERE test_id = $1", test_id)


async def fold(conn: asyncpg.Connection, f: Fold) -> int:
    """Fold the events ingested in [lo, hi) into the state; the number of unit rows written."""
    if f.unit != "user" and f.lo is not None:
        await conn.execute(delete_relinked_sql(f.unit), f.test_id, f.lo, f.hi, f.until)
    status: str = await conn.execute(fold_sql(f.unit, f.layout), *f.args())
    return int(status.split()[-1])


async def analyze(conn: asyncpg.Connection) -> None:
    """Refresh the planner's statistics of the state (after a rebuild, in its transaction: ANALYZE counts
    the rows this transaction wrote). Otherwise requests right after a rebuild can be planned for the
    table as autovacuum last saw it (empty after a test's rows were deleted: a nested loop over the
    1,000,000 rows per changed unit), until autovacuum analyzes it."""
    await conn.execute("ANALYZE experiment_unit_values")


async def save_mark(
    conn: asyncpg.Connection, test_id: uuid.UUID, definition: str, through: dt.datetime
) -> None:
    await conn.execute(
        """INSERT INTO experiment_unit_value_marks (test_id, definition, ingested_through, updated_at)
           VALUES ($1, $2, $3, LOCALTIMESTAMP)
           ON CONFLICT (test_id) DO UPDATE SET definition = excluded.definition,
               ingested_through = excluded.ingested_through, updated_at = excluded.updated_at""",
        test_id,
        definition,
        through,
    )


async def read_sums(
    conn: asyncpg.Connection, f: Fold, ratios: Sequence[tuple[int, int]], cuped: bool
) -> list[asyncpg.Record]:
    """The live statement's rows (``metric_sql.fetch_sums``) from the state and the events ingested
    since ``f.lo`` (``f.hi`` None): for user units first by ``read_users_sql`` (no unit assigned since
    the rows were written), else by ``read_sql``."""
    await conn.execute("SELECT set_config('work_mem', '256MB', true)")
    if f.unit == "user":
        rows = list(await conn.fetch(read_users_sql(f.layout, ratios, cuped), *f.args()))
        if rows and all(r["same"] for r in rows):
            return rows
    return list(await conn.fetch(read_sql(f.unit, f.layout, ratios, cuped), *f.args()))
