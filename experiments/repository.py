"""SQL for experiments (asyncpg). Every function runs on the connection or pool it is given.

The assignment statements are the hot path: one statement for many requests, prepared once per
connection by asyncpg's statement cache.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg

from experiments.definitions import Experiment, Variant

__all__ = [
    "AssignRequest",
    "aggregate_assignments",
    "assign_batch",
    "assign_many",
    "assign_one",
    "fetch_experiment",
    "fetch_experiments",
    "fetch_running",
    "insert_experiment",
    "phase_weights",
    "update_experiment",
    "update_traffic",
    "user_exists",
]

# Both a pool and a connection have fetch/fetchrow/fetchval/execute.
Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection

_SELECT = """
SELECT t.test_id, t.name, t.description, t.status, t.start_date, t.end_date, t.phase, t.goal_event,
       t.created_at, t.updated_at, t.unit,
       array_agg(v.variant_id ORDER BY v.position) AS v_ids,
       array_agg(v.name ORDER BY v.position) AS v_names,
       array_agg(v.description ORDER BY v.position) AS v_descriptions,
       array_agg(v.traffic_percentage ORDER BY v.position) AS v_percentages,
       array_agg(v.position ORDER BY v.position) AS v_positions,
       array_agg(v.is_control ORDER BY v.position) AS v_controls
FROM ab_tests t JOIN ab_test_variants v ON v.test_id = t.test_id
"""

_RUNNING = "t.status = 'active' AND t.start_date <= CURRENT_DATE AND (t.end_date IS NULL OR t.end_date >= CURRENT_DATE)"
# The user statements below write ab_test_assignments: only for experiments whose unit is ``user``.
_USER_RUNNING = _RUNNING + " AND t.unit = 'user'"


def _experiment(row: asyncpg.Record) -> Experiment:
    variants = tuple(
        Variant(vid, name, desc, pct, pos, ctrl)
        for vid, name, desc, pct, pos, ctrl in zip(
            row["v_ids"],
            row["v_names"],
            row["v_descriptions"],
            row["v_percentages"],
            row["v_positions"],
            row["v_controls"],
            strict=True,
        )
    )
    return Experiment(
        test_id=row["test_id"],
        name=row["name"],
        description=row["description"],
        status=row["status"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        phase=row["phase"],
        goal_event=row["goal_event"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        variants=variants,
        unit=row["unit"],
    )


async def fetch_experiment(db: Executor, name: str, *, for_update: bool = False) -> Experiment | None:
    """One experiment by name; ``for_update`` locks its ab_tests row for the rest of the transaction."""
    if for_update:
        # Lock first (aggregates cannot be FOR UPDATE), then read in the same transaction.
        locked = await db.fetchval("SELECT test_id FROM ab_tests WHERE name = $1 FOR UPDATE", name)
        if locked is None:
            return None
    row = await db.fetchrow(_SELECT + " WHERE t.name = $1 GROUP BY t.test_id", name)
    return _experiment(row) if row else None


async def fetch_experiments(db: Executor) -> list[Experiment]:
    """Every experiment, newest first."""
    rows = await db.fetch(_SELECT + " GROUP BY t.test_id ORDER BY t.created_at DESC, t.name")
    return [_experiment(r) for r in rows]


async def fetch_running(db: Executor) -> list[Experiment]:
    """Experiments that assign today (UTC), in name order."""
    rows = await db.fetch(_SELECT + f" WHERE {_RUNNING} GROUP BY t.test_id ORDER BY t.name")
    return [_experiment(r) for r in rows]


async def insert_experiment(
    conn: asyncpg.Connection,
    *,
    name: str,
    description: str | None,
    start_date: dt.date,
    end_date: dt.date | None,
    goal_event: str | None,
    variants: Sequence[tuple[str, str | None, decimal.Decimal, bool]],
    unit: str = "user",
) -> uuid.UUID | None:
    """Insert a test, its variants (in order) and their phase-1 weights; None if the name is taken.

    ON CONFLICT rather than a caught error: the request's transaction stays usable without a savepoint.
    """
    test_id: uuid.UUID | None = await conn.fetchval(
        """INSERT INTO ab_tests (name, description, start_date, end_date, goal_event, unit)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING test_id""",
        name,
        description,
        start_date,
        end_date,
        goal_event,
        unit,
    )
    if test_id is None:
        return None
    await conn.execute(
        """
        WITH v AS (
            INSERT INTO ab_test_variants (test_id, name, description, traffic_percentage, position, is_control)
            SELECT $1, n, d, p, (o - 1)::smallint, c
            FROM unnest($2::text[], $3::text[], $4::numeric[], $5::boolean[]) WITH ORDINALITY AS x(n, d, p, c, o)
            RETURNING variant_id, traffic_percentage
        )
        INSERT INTO ab_test_variant_weights (variant_id, phase, traffic_percentage)
        SELECT variant_id, 1, traffic_percentage FROM v
        """,
        test_id,
        [v[0] for v in variants],
        [v[1] for v in variants],
        [v[2] for v in variants],
        [v[3] for v in variants],
    )
    return test_id


async def update_experiment(conn: asyncpg.Connection, test_id: uuid.UUID, fields: dict[str, Any]) -> None:
    """Set columns of ab_tests (names come from the service, never from the client) and updated_at."""
    if not fields:
        return
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    await conn.execute(
        f"UPDATE ab_tests SET {sets}, updated_at = CURRENT_TIMESTAMP WHERE test_id = $1",
        test_id,
        *fields.values(),
    )


async def update_traffic(
    conn: asyncpg.Connection, test_id: uuid.UUID, phase: int, percentages: dict[uuid.UUID, decimal.Decimal]
) -> None:
    """Start traffic phase ``phase``: new variant percentages, their weight history, the test's phase."""
    ids = list(percentages)
    pcts = [percentages[i] for i in ids]
    await conn.execute(
        """
        UPDATE ab_test_variants v SET traffic_percentage = x.p, updated_at = CURRENT_TIMESTAMP
        FROM unnest($1::uuid[], $2::numeric[]) AS x(id, p) WHERE v.variant_id = x.id
        """,
        ids,
        pcts,
    )
    await conn.execute(
        """INSERT INTO ab_test_variant_weights (variant_id, phase, traffic_percentage)
           SELECT id, $3, p FROM unnest($1::uuid[], $2::numeric[]) AS x(id, p)""",
        ids,
        pcts,
        phase,
    )
    await conn.execute(
        "UPDATE ab_tests SET phase = $2, updated_at = CURRENT_TIMESTAMP WHERE test_id = $1", test_id, phase
    )


# The hot path. One row always comes back:
# - test_ok: the test is active, within its dates and still in the phase whose weights chose $3;
# - user_ok: the user exists;
# - new_*: the row this statement inserted; old_*: the row that existed when the statement began.
# Both new and old are NULL only when another transaction inserted the row concurrently (after this
# statement's snapshot): the caller repeats the statement, which then sees that row.
_ASSIGN_ONE = f"""
WITH t AS (
    SELECT t.test_id FROM ab_tests t WHERE t.test_id = $1 AND t.phase = $4 AND {_USER_RUNNING}
), u AS (
    SELECT user_id FROM users WHERE user_id = $2
), ins AS (
    INSERT INTO ab_test_assignments (assignment_id, test_id, variant_id, user_id, phase)
    SELECT $5, t.test_id, $3, u.user_id, $4 FROM t, u
    ON CONFLICT (test_id, user_id) DO NOTHING
    RETURNING variant_id, assigned_at
)
SELECT EXISTS (SELECT 1 FROM t) AS test_ok, EXISTS (SELECT 1 FROM u) AS user_ok,
       i.variant_id AS new_variant, i.assigned_at AS new_at, a.variant_id AS old_variant, a.assigned_at AS old_at
FROM (SELECT 1) AS one
LEFT JOIN ins i ON true
LEFT JOIN ab_test_assignments a ON a.test_id = $1 AND a.user_id = $2
"""


async def assign_one(
    db: Executor, test_id: uuid.UUID, user_id: uuid.UUID, variant_id: uuid.UUID, phase: int, new_id: uuid.UUID
) -> asyncpg.Record:
    """Insert the assignment unless one exists, in one statement (see ``_ASSIGN_ONE``)."""
    return await db.fetchrow(_ASSIGN_ONE, test_id, user_id, variant_id, phase, new_id)


# The same for several experiments at once (GET /v1/users/{id}/assignments): one row per requested
# test. Rows are inserted in test_id order so that two such calls for one user cannot deadlock.
_ASSIGN_MANY = f"""
WITH req AS (
    SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::smallint[], $5::uuid[]) AS r(test_id, variant_id, phase, new_id)
), t AS (
    SELECT req.* FROM req JOIN ab_tests t ON t.test_id = req.test_id AND t.phase = req.phase AND {_USER_RUNNING}
), u AS (
    SELECT user_id FROM users WHERE user_id = $1
), ins AS (
    INSERT INTO ab_test_assignments (assignment_id, test_id, variant_id, user_id, phase)
    SELECT t.new_id, t.test_id, t.variant_id, u.user_id, t.phase FROM t, u ORDER BY t.test_id
    ON CONFLICT (test_id, user_id) DO NOTHING
    RETURNING test_id, variant_id, assigned_at
)
SELECT req.test_id, t.test_id IS NOT NULL AS test_ok, EXISTS (SELECT 1 FROM u) AS user_ok,
       i.variant_id AS new_variant, i.assigned_at AS new_at, a.variant_id AS old_variant, a.assigned_at AS old_at
FROM req
LEFT JOIN t ON t.test_id = req.test_id
LEFT JOIN ins i ON i.test_id = req.test_id
LEFT JOIN ab_test_assignments a ON a.test_id = req.test_id AND a.user_id = $1
"""


async def assign_many(
    db: Executor, user_id: uuid.UUID, wanted: Sequence[tuple[uuid.UUID, uuid.UUID, int, uuid.UUID]]
) -> list[asyncpg.Record]:
    """``assign_one`` for several (test_id, variant_id, phase, new assignment id) in one statement."""
    return list(
        await db.fetch(
            _ASSIGN_MANY,
            user_id,
            [w[0] for w in wanted],
            [w[1] for w in wanted],
            [w[2] for w in wanted],
            [w[3] for w in wanted],
        )
    )


# The hot path under load: many users' first assignments in one statement (experiments.assigner groups
# concurrent requests). Per request row ``ord`` the same answer as ``_ASSIGN_ONE``. Requests must be
# unique per (test_id, user_id); rows are inserted in key order so concurrent batches cannot deadlock.
_ASSIGN_BATCH = f"""
WITH req AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::smallint[], $5::uuid[])
        WITH ORDINALITY AS r(test_id, user_id, variant_id, phase, new_id, ord)
), t AS (
    SELECT req.ord FROM req JOIN ab_tests t ON t.test_id = req.test_id AND t.phase = req.phase AND {_USER_RUNNING}
), u AS (
    SELECT req.ord FROM req JOIN users u ON u.user_id = req.user_id
), ins AS (
    INSERT INTO ab_test_assignments (assignment_id, test_id, variant_id, user_id, phase)
    SELECT req.new_id, req.test_id, req.variant_id, req.user_id, req.phase
    FROM req JOIN t ON t.ord = req.ord JOIN u ON u.ord = req.ord
    ORDER BY req.test_id, req.user_id
    ON CONFLICT (test_id, user_id) DO NOTHING
    RETURNING test_id, user_id, variant_id, assigned_at
)
SELECT req.ord, t.ord IS NOT NULL AS test_ok, u.ord IS NOT NULL AS user_ok,
       i.variant_id AS new_variant, i.assigned_at AS new_at, a.variant_id AS old_variant, a.assigned_at AS old_at
FROM req
LEFT JOIN t ON t.ord = req.ord
LEFT JOIN u ON u.ord = req.ord
LEFT JOIN ins i ON i.test_id = req.test_id AND i.user_id = req.user_id
LEFT JOIN ab_test_assignments a ON a.test_id = req.test_id AND a.user_id = req.user_id
ORDER BY req.ord
"""


AssignRequest: TypeAlias = tuple[uuid.UUID, uuid.UUID, uuid.UUID, int, uuid.UUID]
"""(test_id, user_id, variant_id, phase, new assignment id)."""


async def assign_batch(db: Executor, wanted: Sequence[AssignRequest]) -> list[asyncpg.Record]:
    """``assign_one`` for many (test, user) pairs in one statement; rows in the order of ``wanted``."""
    return list(
        await db.fetch(
            _ASSIGN_BATCH,
            [w[0] for w in wanted],
            [w[1] for w in wanted],
            [w[2] for w in wanted],
            [w[3] for w in wanted],
            [w[4] for w in wanted],
        )
    )


async def user_exists(db: Executor, user_id: uuid.UUID) -> bool:
    """Whether a users row exists."""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $1)", user_id))


async def aggregate_assignments(db: Executor, test_id: uuid.UUID) -> list[asyncpg.Record]:
    """Units and conversions per (variant, phase), counted by PostgreSQL: no row reaches Python.

    A test's assignments are in one of the two tables (its unit's); the other contributes no row.
    """
    return list(
        await db.fetch(
            """SELECT variant_id, phase, count(*) AS users, count(*) FILTER (WHERE converted) AS conversions
               FROM ab_test_assignments WHERE test_id = $1 GROUP BY variant_id, phase
               UNION ALL
               SELECT variant_id, phase, count(*), count(*) FILTER (WHERE converted)
               FROM experiment_unit_assignments WHERE test_id = $1 GROUP BY variant_id, phase""",
            test_id,
        )
    )


async def phase_weights(db: Executor, test_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every variant's percentage in every phase of the test."""
    return list(
        await db.fetch(
            """SELECT w.variant_id, w.phase, w.traffic_percentage
               FROM ab_test_variant_weights w JOIN ab_test_variants v ON v.variant_id = w.variant_id
               WHERE v.test_id = $1""",
            test_id,
        )
    )


async def delete_user_assignments(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Delete a user's assignments (by name, not trusting a cascade); the number deleted."""
    status: str = await conn.execute("DELETE FROM ab_test_assignments WHERE user_id = $1", user_id)
    return int(status.rsplit(" ", 1)[-1])
