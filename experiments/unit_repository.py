"""SQL of the units that are not registered accounts (asyncpg): ``anonymous`` and ``external``.

Their assignments live in ``experiment_unit_assignments`` (the seed's ``ab_test_assignments`` keeps its
NOT NULL foreign key to ``users``). The hot path is the same as for users: one ``INSERT ... SELECT FROM
unnest(...)`` statement for a group of concurrent requests, prepared once per connection.

Also here, for every reader of experiment data: which assignment an event counts for
(``unit_event_join_sql``) and every assignment of a test in one shape (``unit_assignments_sql``),
whatever the experiment's unit (docs/experiment-units.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from experiments.conversion_repository import convert_sql
from experiments.repository import _RUNNING

__all__ = [
    "UNITS",
    "UnitAssignRequest",
    "assign_unit_batch",
    "assign_unit_one",
    "convert_unit",
    "delete_user_links",
    "linked_assignment",
    "unit_assignments_sql",
    "unit_event_join_sql",
]

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection

UNITS = ("user", "anonymous", "external")

# As ``repository._ASSIGN_BATCH`` for users, with the same answer per request row ``ord``: test_ok (the
# test is running, in the phase whose weights chose the variant, and assigns anonymous or external
# ids), user_ok (always true: any id is a unit), the row inserted now (new_*) or found (old_*). Both
# NULL: another transaction inserted the row after this statement's snapshot; the caller repeats it.
# Requests are unique per (test, unit id); rows are inserted in key order so batches cannot deadlock.
_ASSIGN_UNIT_BATCH = f"""
WITH req AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::smallint[], $5::uuid[])
        WITH ORDINALITY AS r(test_id, unit_id, variant_id, phase, new_id, ord)
), t AS (
    SELECT req.ord, t.unit FROM req
    JOIN ab_tests t ON t.test_id = req.test_id AND t.phase = req.phase AND t.unit <> 'user' AND {_RUNNING}
), ins AS (
    INSERT INTO experiment_unit_assignments (assignment_id, test_id, variant_id, unit_type, unit_id, phase)
    SELECT req.new_id, req.test_id, req.variant_id, t.unit, req.unit_id, req.phase
    FROM req JOIN t ON t.ord = req.ord
    ORDER BY req.test_id, req.unit_id
    ON CONFLICT (test_id, unit_id) DO NOTHING
    RETURNING test_id, unit_id, variant_id, assigned_at
)
SELECT req.ord, t.ord IS NOT NULL AS test_ok, true AS user_ok,
       i.variant_id AS new_variant, i.assigned_at AS new_at, a.variant_id AS old_variant, a.assigned_at AS old_at
FROM req
LEFT JOIN t ON t.ord = req.ord
LEFT JOIN ins i ON i.test_id = req.test_id AND i.unit_id = req.unit_id
LEFT JOIN experiment_unit_assignments a ON a.test_id = req.test_id AND a.unit_id = req.unit_id
ORDER BY req.ord
"""

UnitAssignRequest: TypeAlias = tuple[uuid.UUID, str, uuid.UUID, int, uuid.UUID]
"""(test_id, unit id, variant_id, phase, new assignment id)."""


async def assign_unit_batch(db: Executor, wanted: Sequence[UnitAssignRequest]) -> list[asyncpg.Record]:
    """Sticky assignment of many (test, unit id) pairs in one statement; rows in the order of ``wanted``."""
    return list(
        await db.fetch(
            _ASSIGN_UNIT_BATCH,
            [w[0] for w in wanted],
            [w[1] for w in wanted],
            [w[2] for w in wanted],
            [w[3] for w in wanted],
            [w[4] for w in wanted],
        )
    )


async def assign_unit_one(db: Executor, wanted: UnitAssignRequest) -> asyncpg.Record:
    """``assign_unit_batch`` for one request (the group commit's row-by-row retry)."""
    return (await assign_unit_batch(db, [wanted]))[0]


# The anonymous assignment of test $1 that a user or Segment userId stands for: among the anonymous ids
# identify/alias linked to it, the one assigned first (ties by id), as ``unit_event_join_sql`` maps
# that id's events. A registered user is found by the account the event was linked to, or by its id
# as the Segment userId.
_LINKED = """
SELECT a.assignment_id, a.unit_id, a.variant_id, a.assigned_at, a.converted_at
FROM experiment_identity_links l
JOIN experiment_unit_assignments a ON a.test_id = $1 AND a.unit_id = l.anonymous_id
WHERE {match}
ORDER BY a.assigned_at, a.unit_id
LIMIT 1
"""
_LINKED_EXTERNAL = _LINKED.format(match="l.external_user_id = $2")
_LINKED_USER = _LINKED.format(match="(l.user_id = $2 OR l.external_user_id = $2::uuid::text)")


async def linked_assignment(
    db: Executor, test_id: uuid.UUID, *, user_id: uuid.UUID | None = None, external_user_id: str | None = None
) -> asyncpg.Record | None:
    """The anonymous assignment in ``test_id`` linked to the user or Segment userId, if any."""
    if user_id is not None:
        return await db.fetchrow(_LINKED_USER, test_id, user_id)
    return await db.fetchrow(_LINKED_EXTERNAL, test_id, external_user_id)


# First conversion wins, as for users.
_CONVERT_UNIT = convert_sql("experiment_unit_assignments", "unit_id")


async def convert_unit(db: Executor, test_id: uuid.UUID, unit_id: str) -> asyncpg.Record:
    """Mark the unit's assignment converted unless it already is (see ``_CONVERT_UNIT``)."""
    return await db.fetchrow(_CONVERT_UNIT, test_id, unit_id)


async def delete_user_links(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Delete the identify/alias links of an erased account (by the account or its id as userId)."""
    status: str = await conn.execute(
        "DELETE FROM experiment_identity_links WHERE user_id = $1 OR external_user_id = $1::text", user_id
    )
    return int(status.rsplit(" ", 1)[-1])


# --- For readers of experiment data (conversions, metrics) --------------------------------------------

_COLUMNS = (
    "a.assignment_id, {unit_id} AS unit_id, a.variant_id, a.phase, a.assigned_at, a.converted, a.converted_at"
)


def unit_assignments_sql(unit: str, test: str = "$1") -> str:
    """A SELECT of every assignment of the test whose id is the SQL expression ``test``, whatever its unit.

    Columns: ``assignment_id, unit_id`` (text: the user's UUID, or the Segment id), ``variant_id, phase,
    assigned_at, converted, converted_at``. Use it to count units with no event (they count as 0).
    """
    _check(unit)
    if unit == "user":
        cols = _COLUMNS.format(unit_id="a.user_id::text")
        return f"SELECT {cols} FROM ab_test_assignments a WHERE a.test_id = {test}"
    return f"SELECT {_COLUMNS.format(unit_id='a.unit_id')} FROM experiment_unit_assignments a WHERE a.test_id = {test}"


def unit_event_join_sql(
    unit: str, test: str = "$1", event: str = "e", out: str = "ua", *, probe: bool = False
) -> str:
    """SQL to append after ``FROM analytics_events {event}``: each event row joined to the one assignment
    of test ``test`` it counts for, as ``{out}`` (the columns of ``unit_assignments_sql``); events that
    count for no unit of the test are dropped. The rule (docs/experiment-units.md):

    - ``user``: the event's ``user_id``;
    - ``anonymous``: the event's ``anonymous_id`` if that id is assigned in the test; otherwise, if the
      event has a Segment ``userId`` (``external_user_id``) that identify/alias linked to assigned
      anonymous ids, the earliest assigned of them (what assigning that user answers);
    - ``external``: the event's ``external_user_id``; an event without one (before sign-in) counts
      for the earliest assigned Segment userId its ``anonymous_id`` was linked to.

    Each event counts for at most one unit. Two plans, the same rows: by default hash joins against the
    test's assignments and links (for reading many events: metrics); ``probe=True`` is a LATERAL of
    index probes per event (for a few events: the incremental conversion job). ``test`` may be a
    parameter or, with ``probe``, a column of an outer query.
    """
    _check(unit)
    if unit == "user":
        cols = _COLUMNS.format(unit_id="a.user_id::text")
        if probe:
            return (
                f"CROSS JOIN LATERAL (SELECT {cols} FROM ab_test_assignments a "
                f"WHERE a.test_id = {test} AND a.user_id = {event}.user_id) {out}"
            )
        return (
            f"JOIN (SELECT {cols}, a.user_id AS user_key FROM ab_test_assignments a WHERE a.test_id = {test}) "
            f"{out} ON {out}.user_key = {event}.user_id"
        )
    if unit == "anonymous":
        sides = ("anonymous_id", "external_user_id", "l.anonymous_id", "")
    else:
        sides = (
            "external_user_id",
            "anonymous_id",
            "l.external_user_id",
            f" AND {event}.external_user_id IS NULL",
        )
    return (_probe_join if probe else _hash_join)(test, event, out, *sides)


_X = ("assignment_id", "unit_id", "variant_id", "phase", "assigned_at", "converted", "converted_at")


def _probe_join(test: str, event: str, out: str, direct: str, via: str, linked_on: str, guard: str) -> str:
    cols = _COLUMNS.format(unit_id="a.unit_id")
    return f"""CROSS JOIN LATERAL (
    SELECT {", ".join("x." + c for c in _X)}
    FROM (
        SELECT {cols}, 0 AS via_link FROM experiment_unit_assignments a
        WHERE a.test_id = {test} AND a.unit_id = {event}.{direct}
        UNION ALL
        (SELECT {cols}, 1 FROM experiment_identity_links l
         JOIN experiment_unit_assignments a ON a.test_id = {test} AND a.unit_id = {linked_on}
         WHERE l.{via} = {event}.{via}{guard}
         ORDER BY a.assigned_at, a.unit_id LIMIT 1)
    ) x ORDER BY x.via_link LIMIT 1
) {out}"""


def _hash_join(test: str, event: str, out: str, direct: str, via: str, linked_on: str, guard: str) -> str:
    # {out}_d: the event's own id, assigned; {out}_k: per linked id, the earliest assigned unit linked to
    # it, used only when the own id is not assigned. The LATERAL picks whichever matched (no table read).
    d, k = f"{out}_d", f"{out}_k"
    cols = _COLUMNS.format(unit_id="a.unit_id")
    pick = ", ".join(
        f"CASE WHEN {d}.assignment_id IS NOT NULL THEN {d}.{c} ELSE {k}.{c} END AS {c}" for c in _X
    )
    return f"""LEFT JOIN experiment_unit_assignments {d} ON {d}.test_id = {test} AND {d}.unit_id = {event}.{direct}
LEFT JOIN (
    SELECT DISTINCT ON (l.{via}) l.{via} AS via, {cols}
    FROM experiment_identity_links l
    JOIN experiment_unit_assignments a ON a.test_id = {test} AND a.unit_id = {linked_on}
    ORDER BY l.{via}, a.assigned_at, a.unit_id
) {k} ON {d}.assignment_id IS NULL AND {k}.via = {event}.{via}{guard}
CROSS JOIN LATERAL (
    SELECT {pick} WHERE {d}.assignment_id IS NOT NULL OR {k}.assignment_id IS NOT NULL
) {out}"""


def _check(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}")
