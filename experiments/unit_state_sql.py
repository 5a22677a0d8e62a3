"""SQL of the per-unit metric state (``experiment_unit_values``): its layout, the fold and the read.

A unit's row holds, per event metric ("part", in the order of the experiment's analysis), the additive
pieces of what ``metric_sql.build`` computes per unit in its ``pu`` CTE, over the events folded so far:

- ``y``: after exposure within the part's window; ``x``: over the CUPED lookback before exposure (a sum
  of the property's numbers, a count of events, or the 0/1 maximum for binomial and retention);
- ``s``: the part's events after exposure whose property is not a number (skipped);
- a mean also keeps ``yn``/``xn``, the numbers of values, so that ``y / yn`` is the unit's mean.

Pieces combine by addition, the 0/1 ones by ``greatest``, so new events fold in with an additive
UPSERT. One statement (``changes``) gives the change since an ingestion time for every unit: the
events ingested in ``[lo, hi)`` for units whose row holds, full values for the units that must be
recomputed (no row yet, or, for anonymous/external units, an id linked since ``lo`` or a newly assigned
neighbour: the earliest-assigned rule of ``unit_event_join_sql`` may now send their events elsewhere).
The job writes it (``fold_sql``); a request combines it with the rows (``read_sql``) and sums as the
live statement does (``metric_sql.summary_sql``'s sums, in one pass: ``unit_state_sums``).

Parameters of both: $1 test, $2 event names, $3 ``lo`` (ingestion time, NULL: no row is read as
current), $4 until (event time and exposure bound), $5 CUPED lookback days, $6... each part's event
name, then ``hi`` (ingestion time, NULL: no bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from experiments.metric_definitions import MetricDef
from experiments.metric_sql import property_columns, windows
from experiments.unit_repository import unit_event_join_sql
from experiments.unit_state_sums import sums_sql

__all__ = ["Layout", "delete_relinked_sql", "fold_sql", "read_sql", "read_users_sql", "relinked_sql"]

_STATE = "experiment_unit_values"


@dataclass(frozen=True)
class Layout:
    """Where each part's pieces are in a row's ``v`` (1-based PostgreSQL array subscripts)."""

    parts: tuple[MetricDef, ...]

    @staticmethod
    def slots(part: MetricDef) -> tuple[str, ...]:
        return ("y", "x", "s", "yn", "xn") if part.kind == "mean" else ("y", "x", "s")

    def index(self, i: int, slot: str) -> int:
        start = 1 + sum(len(self.slots(p)) for p in self.parts[:i])
        return start + self.slots(self.parts[i]).index(slot)

    @property
    def width(self) -> int:
        return sum(len(self.slots(p)) for p in self.parts)

    def combine(self, a: str, b: str) -> str:
        """SQL of the array combining rows ``a`` and ``b`` piece by piece."""
        out = []
        for i, p in enumerate(self.parts):
            for slot in self.slots(p):
                j = self.index(i, slot)
                op = "greatest" if p.binary and slot in ("y", "x") else ""
                out.append(f"{op}({a}[{j}], {b}[{j}])" if op else f"({a}[{j}] + {b}[{j}])")
        return f"ARRAY[{', '.join(out)}]::float8[]"

    def zeros(self) -> str:
        return "'{" + ",".join(["0"] * self.width) + "}'::float8[]"

    def value(self, v: str, i: int, side: str) -> str:
        """The live statement's ``y{i}``, ``x{i}`` or ``s{i}`` (``side``) from the array ``v``: part ``i``'s
        value after or before exposure, or its skipped values."""
        p = self.parts[i]
        if p.kind != "mean" or side == "s":
            return f"{v}[{self.index(i, side)}]"
        total, n = self.index(i, side), self.index(i, side + "n")
        return f"CASE WHEN {v}[{n}] > 0 THEN {v}[{total}] / {v}[{n}] ELSE 0::float8 END"


def _pieces(layout: Layout, props: dict[tuple[str, str], str]) -> str:
    """The per-unit aggregate of ``ev``'s rows into the layout's array."""
    out = []
    for i, p in enumerate(layout.parts):
        post, pre = windows(p)
        col = props.get((p.event or "", p.property_name or ""))
        is_event = f"ev.event_name = ${6 + i}"
        for slot in layout.slots(p):
            cond = f"{is_event} AND {post if slot in ('y', 's', 'yn') else pre}"
            if slot == "s":
                out.append(f"count(*) FILTER (WHERE {cond} AND ev.{col} IS NULL)" if col else "0")
            elif slot in ("yn", "xn"):
                out.append(f"count(ev.{col}) FILTER (WHERE {cond})")
            elif p.binary:
                out.append(f"coalesce(max(1) FILTER (WHERE {cond}), 0)")
            elif p.kind == "count":
                out.append(f"count(*) FILTER (WHERE {cond})")
            else:
                out.append(f"coalesce(sum(ev.{col}) FILTER (WHERE {cond}), 0)")
    return "ARRAY[" + ", ".join(f"({x})::float8" for x in out) + "]"


# Identity ids on the unit's side of a link ("direct") and on the other side ("via"), per unit type.
_SIDES = {"anonymous": ("anonymous_id", "external_user_id"), "external": ("external_user_id", "anonymous_id")}


def _units(unit: str) -> str:
    """``u``: the test's units exposed before $4 (``unit`` as text; ``uid``: a user's UUID)."""
    if unit == "user":
        return (
            "SELECT a.variant_id, a.user_id AS uid, a.user_id::text AS unit, a.assigned_at AS exposed_at "
            "FROM ab_test_assignments a WHERE a.test_id = $1 AND a.assigned_at < $4"
        )
    return (
        "SELECT a.variant_id, a.unit_id AS unit, a.assigned_at AS exposed_at "
        "FROM experiment_unit_assignments a WHERE a.test_id = $1 AND a.assigned_at < $4"
    )


def relinked_sql(unit: str, lo: str, hi: str) -> str:
    """CTEs ending in ``aff(id)``: the ids of units to recompute because their events may now count for
    another unit: units without a row, units linked since ``lo``, and every unit sharing a linked id
    with one of those (a new earliest-assigned unit behind that id). Needs ``u`` and ``fresh``."""
    direct, via = _SIDES[unit]
    return f"""chg AS (
    SELECT l.anonymous_id, l.external_user_id FROM experiment_identity_links l
    WHERE l.created_at >= {lo} AND l.created_at < coalesce({hi}, 'infinity'::timestamp)
),
c AS (SELECT unit AS id FROM fresh UNION SELECT chg.{direct} FROM chg),
vv AS (SELECT chg.{via} AS id FROM chg UNION SELECT l.{via} FROM experiment_identity_links l JOIN c ON l.{direct} = c.id),
aff AS (SELECT id FROM c UNION SELECT l.{direct} FROM experiment_identity_links l JOIN vv ON l.{via} = vv.id)"""


def _fresh(test: str, gone: bool = False) -> str:
    """``fresh``: the units without a row; with ``gone``, also ``gone``: rows whose unit is no longer
    assigned (an erased account), from one join of the keys."""
    if not gone:
        return (
            f"fresh AS MATERIALIZED (SELECT u.unit FROM u WHERE NOT EXISTS "
            f"(SELECT 1 FROM {_STATE} s WHERE s.test_id = {test} AND s.unit_id = u.unit))"
        )
    return f"""keys AS MATERIALIZED (
    SELECT u.unit AS assigned, s.unit_id::text AS kept
    FROM u FULL JOIN (SELECT s.unit_id FROM {_STATE} s WHERE s.test_id = {test}) s ON s.unit_id = u.unit
    WHERE u.unit IS NULL OR s.unit_id IS NULL
),
fresh AS (SELECT k.assigned AS unit FROM keys k WHERE k.kept IS NULL),
gone AS (SELECT k.kept AS unit FROM keys k WHERE k.assigned IS NULL)"""


def _events(unit: str, joins: str, prop_cols: str, hi: str) -> str:
    """``ev``: the delta (ingested in [$3, hi), units with a current row) and the full history (ingested
    before hi) of the units in ``redo``, each row with its unit and whether it is a recomputation. The
    history is not read at all when ``redo`` is empty (a one-time filter)."""
    cols = f'e."timestamp" AS ts, e.event_name{prop_cols}'
    names = f'e.event_name = ANY($2::text[]) AND e."timestamp" < $4 AND e.created_at < {hi}'
    redo = "EXISTS (SELECT 1 FROM redo)"
    if unit == "user":
        return f"""SELECT u.unit, u.variant_id, u.exposed_at, false AS redo, {cols}
    FROM analytics_events e JOIN u ON u.uid = e.user_id{joins}
    WHERE {names} AND e.created_at >= $3 AND NOT EXISTS (SELECT 1 FROM redo r WHERE r.unit = u.unit)
    UNION ALL
    SELECT r.unit, r.variant_id, r.exposed_at, true, {cols}
    FROM redo r JOIN analytics_events e ON e.user_id = r.uid{joins}
    WHERE {names} AND {redo}"""
    join = unit_event_join_sql(unit, "$1", "e", "ua")
    unit_cols = "ua.unit_id AS unit, ua.variant_id, ua.assigned_at AS exposed_at"
    return f"""SELECT {unit_cols}, false AS redo, {cols}
    FROM analytics_events e {join}{joins}
    WHERE {names} AND e.created_at >= $3 AND ua.assigned_at < $4
      AND NOT EXISTS (SELECT 1 FROM redo r WHERE r.unit = ua.unit_id)
    UNION ALL
    SELECT {unit_cols}, true, {cols}
    FROM analytics_events e {join}{joins}
    WHERE {names} AND ua.assigned_at < $4 AND ua.unit_id IN (SELECT r.unit FROM redo r) AND {redo}"""


def _changes(unit: str, layout: Layout, hi: str, relinks: bool) -> str:
    """The CTEs ``u``, ``fresh``, ``redo`` and ``pend`` (per unit: ``unit, variant_id, exposed_at, redo,
    v``, the change since $3); with ``relinks`` (the read) also ``gone``."""
    props, joins, prop_cols = property_columns(layout.parts)
    hi_at = f"coalesce({hi}::timestamp, 'infinity'::timestamp)"
    if relinks and unit != "user":
        redo = f"{relinked_sql(unit, '$3', hi)},\nredo AS MATERIALIZED (SELECT u.* FROM u WHERE u.unit IN (SELECT id FROM aff))"
    else:
        redo = "redo AS MATERIALIZED (SELECT u.* FROM u JOIN fresh f ON f.unit = u.unit)"
    return f"""u AS MATERIALIZED ({_units(unit)}),
{_fresh("$1", gone=relinks)},
{redo},
ev AS (
    {_events(unit, joins, prop_cols, hi_at)}
),
pend AS MATERIALIZED (
    SELECT ev.unit, ev.variant_id, ev.exposed_at, ev.redo, {_pieces(layout, props)} AS v
    FROM ev GROUP BY ev.unit, ev.variant_id, ev.exposed_at, ev.redo
)"""


def fold_sql(unit: str, layout: Layout) -> str:
    """The job's UPSERT: the delta added to each current row; the recomputed units (rows deleted first
    by ``delete_relinked_sql``, so none conflicts) inserted, with zeros if they have no event."""
    hi = f"${6 + len(layout.parts)}"
    uid = "{x}.unit::uuid" if unit == "user" else "NULL::uuid"
    return f"""
WITH {_changes(unit, layout, hi, relinks=False)}
INSERT INTO {_STATE} AS s (test_id, unit_id, variant_id, exposed_at, v, user_id)
SELECT $1, p.unit, p.variant_id, p.exposed_at, p.v, {uid.format(x="p")} FROM pend p
UNION ALL
SELECT $1, r.unit, r.variant_id, r.exposed_at, {layout.zeros()}, {uid.format(x="r")} FROM redo r
WHERE NOT EXISTS (SELECT 1 FROM pend p WHERE p.unit = r.unit)
ON CONFLICT (test_id, unit_id) DO UPDATE SET v = {layout.combine("s.v", "excluded.v")}
"""


def delete_relinked_sql(unit: str) -> str:
    """Delete the rows of the units to recompute (anonymous and external units: see ``relinked_sql``).
    Parameters: $1 test, $2 lo, $3 hi, $4 until."""
    return f"""
WITH u AS MATERIALIZED ({_units(unit)}),
{_fresh("$1")},
{relinked_sql(unit, "$2::timestamp", "$3::timestamp")}
DELETE FROM {_STATE} s WHERE s.test_id = $1 AND s.unit_id IN (SELECT id FROM aff)
"""


def read_sql(unit: str, layout: Layout, ratios: Sequence[tuple[int, int]], cuped: bool) -> str:
    """The live statement's rows from the state: the rows of units with no change as they are, the others
    combined with their change since $3 (or replaced by their recomputation), then the caps and the sums
    per variant (``metric_sql``). The state is read twice (its keys, its rows), the assignments once."""
    hi = f"${6 + len(layout.parts)}"
    return f"""
WITH {_changes(unit, layout, hi, relinks=True)},
skip AS MATERIALIZED (
    SELECT p.unit FROM pend p UNION SELECT r.unit FROM redo r UNION SELECT g.unit FROM gone g
    -- Never fewer rows than there are (each unit once); a limit the planner cannot read caps its
    -- estimate (the CTEs above are estimated far too large), so NOT IN below hashes this side.
    LIMIT (SELECT count(*) FROM u) + (SELECT count(*) FROM keys)
),
m AS NOT MATERIALIZED (
    SELECT st.variant_id, st.unit_id AS unit, st.v FROM {_STATE} st
    WHERE st.test_id = $1 AND st.unit_id::text NOT IN (SELECT k.unit FROM skip k)
    UNION ALL
    SELECT p.variant_id, p.unit, CASE WHEN p.redo OR st.v IS NULL THEN p.v ELSE {layout.combine("st.v", "p.v")} END
    FROM pend p LEFT JOIN {_STATE} st ON st.test_id = $1 AND st.unit_id = p.unit
),
{sums_sql(layout.parts, partial(layout.value, "m.v"), ratios, cuped, count=False)},
nv AS (SELECT u.variant_id, count(*) AS n FROM u GROUP BY 1)
SELECT nv.variant_id, '' AS dim, nv.n, $5::int AS lookback_days, sums.*
FROM nv LEFT JOIN sums ON sums.sv = nv.variant_id
"""


def read_users_sql(layout: Layout, ratios: Sequence[tuple[int, int]], cuped: bool) -> str:
    """``read_sql`` for user units when no unit was assigned since the rows were written: the assignments
    are only counted. A row goes with its assignment (the foreign key), so as many rows (every row is
    one unit of ``pu``) as assignments means the same units; each row carries ``same``, and when it is
    false the caller reads ``read_sql`` instead. The change since $3 is found by the rows' ``user_id``."""
    props, joins, prop_cols = property_columns(layout.parts)
    hi = f"coalesce(${6 + len(layout.parts)}::timestamp, 'infinity'::timestamp)"
    return f"""
WITH ev AS (
    SELECT st.unit_id AS unit, st.variant_id, st.exposed_at, e."timestamp" AS ts, e.event_name{prop_cols}
    FROM analytics_events e JOIN {_STATE} st ON st.test_id = $1 AND st.user_id = e.user_id{joins}
    WHERE e.event_name = ANY($2::text[]) AND e."timestamp" < $4 AND e.created_at >= $3 AND e.created_at < {hi}
),
pend AS MATERIALIZED (
    SELECT ev.unit, ev.variant_id, ev.exposed_at, {_pieces(layout, props)} AS v
    FROM ev GROUP BY ev.unit, ev.variant_id, ev.exposed_at
),
skip AS MATERIALIZED (SELECT p.unit FROM pend p LIMIT (SELECT count(*) FROM pend)),
m AS NOT MATERIALIZED (
    SELECT st.variant_id, st.unit_id AS unit, st.v FROM {_STATE} st
    WHERE st.test_id = $1 AND st.unit_id::text NOT IN (SELECT k.unit FROM skip k)
    UNION ALL
    SELECT p.variant_id, p.unit, {layout.combine("st.v", "p.v")}
    FROM pend p JOIN {_STATE} st ON st.test_id = $1 AND st.unit_id = p.unit
),
{sums_sql(layout.parts, partial(layout.value, "m.v"), ratios, cuped, count=True)},
chk AS (
    SELECT (SELECT count(*) FROM ab_test_assignments a WHERE a.test_id = $1 AND a.assigned_at < $4)
         = (SELECT sum(s.n) FROM sums s) AS same
)
SELECT sums.sv AS variant_id, '' AS dim, $5::int AS lookback_days, sums.*, (SELECT c.same FROM chk c) AS same
FROM sums
"""
