"""SQL of per-metric sufficient statistics (asyncpg): one statement per experiment and results request.

For every event metric ("part": a metric over events, or one side of a ratio) and every unit, the
statement computes the value after exposure (``y``) and, for CUPED, the same value over the lookback
before exposure (``x``), caps both at the part's percentile cap, and sums per variant: Σy, Σy², Σx, Σx²,
Σxy, plus Σ(y_num·y_den) for each ratio. Units without a qualifying event are 0 in every sum, so only
units with events are grouped; ``n`` comes from the assignments. No row reaches Python.

``UnitSource`` is the one place that says which table holds the experiment's units and which column of
``analytics_events`` names a unit: the registered-user source is here; other unit types plug in a source
of their own without touching the statement.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from experiments.metric_definitions import MetricDef
from experiments.unit_repository import unit_assignments_sql, unit_event_join_sql

__all__ = [
    "USER_UNITS",
    "UnitSource",
    "build",
    "fetch_earliest",
    "fetch_sums",
    "property_columns",
    "summary_sql",
    "unit_source",
    "windows",
]

# A property value counts as a number when PostgreSQL reads it as a finite double within ±1e12 (larger
# values would overflow the sums of squares); anything else is skipped and counted.
_LIMIT = "1e12"
_NUMBER = (
    "CASE WHEN pg_input_is_valid({v}, 'float8') AND abs(nullif({v}, 'NaN')::float8) <= " + _LIMIT + " "
    "THEN {v}::float8 END"
)


@dataclass(frozen=True, slots=True)
class UnitSource:
    """Where an experiment's units are and which unit an event row counts for.

    ``assignments``: SQL giving ``(variant_id, unit, exposed_at)`` for test ``$1``, named ``u`` in the
    statement. ``event_join``: SQL after ``FROM analytics_events e`` that keeps the events counting for
    a unit, and ``event_unit``: its columns ``unit, variant_id, exposed_at``.
    """

    assignments: str
    event_join: str
    event_unit: str


# Registered users: one hash join of the events' user_id with the test's assignments.
USER_UNITS = UnitSource(
    assignments="SELECT a.variant_id, a.user_id AS unit, a.assigned_at AS exposed_at "
    "FROM ab_test_assignments a WHERE a.test_id = $1",
    event_join="JOIN u ON u.unit = e.user_id",
    event_unit="u.unit, u.variant_id, u.exposed_at",
)


def unit_source(unit: str) -> UnitSource:
    """The source for an experiment's unit: users by hash join; Segment ids (anonymous, external) through
    the identity-stitching join of ``experiments.unit_repository`` (events under either linked id count)."""
    if unit == "user":
        return USER_UNITS
    return UnitSource(
        assignments=f"SELECT a.variant_id, a.unit_id AS unit, a.assigned_at AS exposed_at FROM ({unit_assignments_sql(unit)}) a",
        event_join=unit_event_join_sql(unit, "$1", "e", "ua"),
        event_unit="ua.unit_id AS unit, ua.variant_id, ua.assigned_at AS exposed_at",
    )


def windows(part: MetricDef) -> tuple[str, str]:
    """(after exposure, before exposure) conditions on ``ev.ts`` against ``ev.exposed_at``."""
    if part.retention_days is not None:
        lo, hi = part.retention_days
        post = (
            f"ev.ts >= ev.exposed_at + interval '{lo} days' AND ev.ts < ev.exposed_at + interval '{hi} days'"
        )
    elif part.window_hours is not None:
        post = f"ev.ts >= ev.exposed_at AND ev.ts < ev.exposed_at + interval '{part.window_hours} hours'"
    else:
        post = "ev.ts >= ev.exposed_at"
    pre = "ev.ts >= ev.exposed_at - make_interval(days => $5::int) AND ev.ts < ev.exposed_at"
    # The upper bound (the experiment's end) is the statement's WHERE on every event.
    return post, pre


def _value(part: MetricDef, cond: str, col: str | None) -> str:
    """The per-unit aggregate of the part's events matching ``cond``."""
    if part.binary:
        return f"coalesce(max(1) FILTER (WHERE {cond}), 0)::float8"
    if part.kind == "count":
        return f"(count(*) FILTER (WHERE {cond}))::float8"
    agg = "avg" if part.kind == "mean" else "sum"
    return f"coalesce({agg}(ev.{col}) FILTER (WHERE {cond}), 0)"


def _per_unit(parts: Sequence[MetricDef], props: dict[tuple[str, str], str], cuped: bool) -> list[str]:
    cols = []
    for i, part in enumerate(parts):
        post, pre = windows(part)
        col = props.get((part.event or "", part.property_name or ""))
        is_event = f"ev.event_name = ${6 + i}"
        cols.append(f"{_value(part, f'{is_event} AND {post}', col)} AS y{i}")
        cols.append(f"{_value(part, f'{is_event} AND {pre}', col) if cuped else '0::float8'} AS x{i}")
        skipped = f"count(*) FILTER (WHERE {is_event} AND {post} AND ev.{col} IS NULL)" if col else "0"
        cols.append(f"{skipped} AS s{i}")
    return cols


def _cap_and_sum(parts: Sequence[MetricDef], capped_parts: list[int]) -> tuple[str, str, str]:
    """The caps' select list, the capped per-unit columns and the per-variant sums."""
    caps = ", ".join(
        f"percentile_cont({float(parts[i].cap_percentile or 0)!r}::float8) WITHIN GROUP (ORDER BY y{i}) "
        f"FILTER (WHERE y{i} <> 0) AS c{i}"
        for i in capped_parts
    )
    capped = ", ".join(
        f"least(y{i}, c{i}) AS y{i}, least(x{i}, c{i}) AS x{i}, s{i}"
        if i in capped_parts
        else f"y{i}, x{i}, s{i}"
        for i in range(len(parts))
    )
    sums = ", ".join(
        f"sum(y{i}) AS y{i}, sum(y{i} * y{i}) AS yy{i}, sum(x{i}) AS x{i}, sum(x{i} * x{i}) AS xx{i}, "
        f"sum(y{i} * x{i}) AS yx{i}, sum(s{i}) AS s{i}, "
        + (f"(SELECT c{i} FROM caps) AS c{i}" if i in capped_parts else f"NULL::float8 AS c{i}")
        for i in range(len(parts))
    )
    return caps, capped, sums


def property_columns(parts: Sequence[MetricDef]) -> tuple[dict[tuple[str, str], str], str, str]:
    """The parts' numeric properties: their column names ``p{k}`` by (event, property), the LEFT JOINs of
    ``event_properties`` to append after ``analytics_events e`` and the select list of their values."""
    props = {
        (p.event or "", p.property_name): f"p{k}" for k, p in enumerate(parts) if p.property_name is not None
    }
    joins = "".join(
        f' LEFT JOIN event_properties {c} ON {c}.event_id = e.event_id AND {c}."timestamp" = e."timestamp"'
        f" AND {c}.property_name = '{_quote(prop)}' AND e.event_name = '{_quote(event)}'"
        for (event, prop), c in props.items()
    )
    prop_cols = "".join(f", {_NUMBER.format(v=f'{c}.property_value')} AS {c}" for c in props.values())
    return props, joins, prop_cols


def summary_sql(
    parts: Sequence[MetricDef],
    ratios: Sequence[tuple[int, int]],
    dim: str = "''",
    dim_join: str = "",
    extra: str = "",
) -> str:
    """The statement's end, from the CTEs ``u`` (units: ``variant_id, unit``) and ``pu`` (units with
    events: ``variant_id, unit_key, y{i}, x{i}, s{i}``): the caps, the capped values, the per-variant
    sums and the final rows (``dim_join``: the dimension's join, with ``{unit}``; ``extra``: more
    columns of the final rows, after a comma)."""
    capped_parts = [i for i, p in enumerate(parts) if p.cap_percentile is not None]
    caps, capped, sums = _cap_and_sum(parts, capped_parts)
    products = "".join(f", sum(y{a} * y{b}) AS r{k}" for k, (a, b) in enumerate(ratios))
    return f"""caps AS ({f"SELECT {caps} FROM pu" if caps else "SELECT"}),
capped AS (SELECT pu.variant_id, {dim} AS dim, {capped} FROM pu{dim_join.format(unit="pu.unit_key")} CROSS JOIN caps),
sums AS (SELECT variant_id AS sv, dim AS sd, {sums}{products} FROM capped GROUP BY variant_id, dim),
nv AS (SELECT u.variant_id, {dim} AS dim, count(*) AS n FROM u{dim_join.format(unit="u.unit")} GROUP BY 1, 2)
SELECT nv.variant_id, nv.dim, nv.n, $5::int AS lookback_days, sums.*{extra}
FROM nv LEFT JOIN sums ON sums.sv = nv.variant_id AND sums.sd = nv.dim
"""


def build(
    units: UnitSource,
    parts: Sequence[MetricDef],
    ratios: Sequence[tuple[int, int]],
    cuped: bool,
    dimension: tuple[str, str] | None = None,
) -> str:
    """The statement. Parameters: $1 test, $2 event names, $3/$4 event time bounds (units exposed before
    $4 count: the results as of then), $5 lookback days,
    then per part its event name ($6, $7, ...). Caps are computed only for parts that have one (a sort of
    the units' values each). With ``dimension`` (an event property holding a JSON object, and its key)
    the sums are per variant and value of that key on the unit's earliest event in the time range
    (``'unknown'`` without one)."""
    props, joins, prop_cols = property_columns(parts)
    dims, dim, dim_join = _dimension(units, dimension)
    return f"""
WITH u AS MATERIALIZED (SELECT * FROM ({units.assignments}) AS x WHERE x.exposed_at < $4),{dims}
ev AS (
    SELECT {units.event_unit}, e."timestamp" AS ts, e.event_name{prop_cols}
    FROM analytics_events e {units.event_join}{joins}
    WHERE e.event_name = ANY($2::text[]) AND e."timestamp" >= $3 AND e."timestamp" < $4
),
pu AS MATERIALIZED (
    SELECT ev.variant_id, ev.unit AS unit_key, {", ".join(_per_unit(parts, props, cuped))}
    FROM ev
    GROUP BY ev.variant_id, ev.unit
),
{summary_sql(parts, ratios, dim, dim_join)}"""


def _dimension(units: UnitSource, dimension: tuple[str, str] | None) -> tuple[str, str, str]:
    """The ``dims`` CTE (each unit's value), the value expression and the join to it (``{unit}``)."""
    if dimension is None:
        return "", "''", ""
    prop, key = (_quote(x) for x in dimension)
    dims = f"""
dims AS MATERIALIZED (
    SELECT DISTINCT ON (d.unit) d.unit, d.dim FROM (
        SELECT {units.event_unit}, e."timestamp" AS ts,
               CASE WHEN pg_input_is_valid(dp.property_value, 'jsonb')
                    THEN left(dp.property_value::jsonb ->> '{key}', 100) END AS dim
        FROM analytics_events e {units.event_join}
        JOIN event_properties dp ON dp.event_id = e.event_id AND dp."timestamp" = e."timestamp"
             AND dp.property_name = '{prop}'
        WHERE e."timestamp" >= $3 AND e."timestamp" < $4
    ) d
    WHERE d.dim IS NOT NULL
    ORDER BY d.unit, d.ts
),"""
    return dims, "coalesce(dims.dim, 'unknown')", " LEFT JOIN dims ON dims.unit = {unit}"


def _quote(s: str) -> str:
    """A SQL string literal's body (names come from validated definitions; quotes doubled anyway)."""
    return s.replace("'", "''")


async def fetch_sums(
    conn: asyncpg.Connection,
    units: UnitSource,
    test_id: uuid.UUID,
    parts: Sequence[MetricDef],
    ratios: Sequence[tuple[int, int]],
    *,
    since: dt.datetime,
    until: dt.datetime,
    lookback_days: int | None,
    dimension: tuple[str, str] | None = None,
) -> list[asyncpg.Record]:
    """Per variant (and ``dim``: the dimension's value, '' without one): ``n`` and, per part i, ``y{i}, yy{i}, x{i}, xx{i}, yx{i}, s{i}, c{i}`` and per ratio
    k ``r{k}`` (NULL sums: no unit of the variant had an event). ``lookback_days`` None: no CUPED."""
    sql = build(units, parts, ratios, lookback_days is not None, dimension)
    args: list[object] = [
        test_id,
        sorted({p.event for p in parts if p.event}),
        since,
        until,
        lookback_days or 0,
    ]
    args += [p.event for p in parts]
    # The per-unit grouping is one hash table of the units with events: keep it in memory.
    await conn.execute("SELECT set_config('work_mem', '256MB', true)")
    return list(await conn.fetch(sql, *args))


async def fetch_earliest(
    conn: asyncpg.Connection, units: UnitSource, test_id: uuid.UUID
) -> dt.datetime | None:
    """The test's first exposure (the lower bound of the events read), or None without units."""
    earliest: dt.datetime | None = await conn.fetchval(
        f"SELECT min(u.exposed_at) FROM ({units.assignments}) AS u", test_id
    )
    return earliest
