"""The per-variant sums of a results request read from the per-unit state, in one pass over its rows.

``metric_sql.summary_sql`` (the live statement's end) caps each capped part at a percentile of the units'
non-zero values, then sums the capped values per variant. Over the state's 1,000,000 rows that is a pass
for the caps and another for the sums. Here one aggregate over the rows gives every uncapped sum and,
for the capped parts, keeps only the "hot" rows: those where a capped part's value is not 0 (arrays per
variant, in the rows' order). The caps and the capped sums come from the hot rows alone; every other
row adds ``least(0, cap)`` for each capped value (0 unless the cap is negative), counted in closed form.
The sums are those of ``summary_sql`` over the same rows, added in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from experiments.metric_definitions import MetricDef

__all__ = ["sums_sql"]


def _z(i: int) -> str:
    """A capped part's value on a row whose value is 0 (after and before exposure alike)."""
    return f"least(0::float8, caps.c{i})"


def _kept(capped: Sequence[int], ratios: Sequence[tuple[int, int]]) -> list[str]:
    """The columns a hot row keeps: the capped parts' values and the uncapped sides of their ratios."""
    cols = [c for i in capped for c in (f"y{i}", f"x{i}")]
    for a, b in ratios:
        if (a in capped) != (b in capped):
            cols.append(f"y{b if a in capped else a}")
    return list(dict.fromkeys(cols))


class _Kinds:
    """Which parts are capped, which are 0/1 (uncapped: their squares are their sums) and which can
    skip values (a numeric property; the others' ``s`` is always 0)."""

    def __init__(self, parts: Sequence[MetricDef]) -> None:
        self.n = len(parts)
        self.capped = [i for i, p in enumerate(parts) if p.cap_percentile is not None]
        self.binary = {i for i, p in enumerate(parts) if p.binary and i not in self.capped}
        self.skips = {i for i, p in enumerate(parts) if p.property_name is not None}


def _pass(kinds: _Kinds, ratios: Sequence[tuple[int, int]], hot: str) -> list[str]:
    """The one aggregate over every row: ``rows``, ``k`` (rows not hot), the uncapped sums, the
    ratio sides' sums over the rows not hot, the hot rows' arrays."""
    capped = kinds.capped
    out = ["count(*) AS rows", f"count(*) FILTER (WHERE NOT ({hot})) AS k"]
    for i in range(kinds.n):
        if i not in capped:
            out += [f"sum(y{i}) AS y{i}", f"sum(x{i}) AS x{i}", f"sum(y{i} * x{i}) AS yx{i}"]
            if i not in kinds.binary:
                out += [f"sum(y{i} * y{i}) AS yy{i}", f"sum(x{i} * x{i}) AS xx{i}"]
        if i in kinds.skips:
            out.append(f"sum(s{i}) AS s{i}")
    for k, (a, b) in enumerate(ratios):
        if a not in capped and b not in capped:
            out.append(f"sum(y{a} * y{b}) AS r{k}")
        elif (a in capped) != (b in capped):
            out.append(f"sum(y{b if a in capped else a}) FILTER (WHERE NOT ({hot})) AS q{k}")
    out += [f"array_agg({c}) FILTER (WHERE {hot}) AS h_{c}" for c in _kept(capped, ratios)]
    return out


def _hot_sums(capped: Sequence[int], ratios: Sequence[tuple[int, int]]) -> list[str]:
    """The capped sums over the hot rows (values already capped)."""
    out = []
    for i in capped:
        out += [f"sum(y{i}) AS y{i}", f"sum(y{i} * y{i}) AS yy{i}", f"sum(x{i}) AS x{i}"]
        out += [f"sum(x{i} * x{i}) AS xx{i}", f"sum(y{i} * x{i}) AS yx{i}"]
    out += [f"sum(y{a} * y{b}) AS r{k}" for k, (a, b) in enumerate(ratios) if a in capped or b in capped]
    return out


def _final(kinds: _Kinds, ratios: Sequence[tuple[int, int]]) -> list[str]:
    """The sums per variant: uncapped from the pass; capped from the hot rows plus ``k`` rows' zeros."""
    capped = kinds.capped
    out = []
    for i in range(kinds.n):
        out.append(f"a.s{i}" if i in kinds.skips else f"0::float8 AS s{i}")
        if i not in capped:
            out += [f"a.{c}{i}" for c in ("y", "x", "yx")] + [f"NULL::float8 AS c{i}"]
            sq = ("y", "x") if i in kinds.binary else ("yy", "xx")
            out += [f"a.{c}{i} AS {q}{i}" for c, q in zip(sq, ("yy", "xx"), strict=True)]
            continue
        z = _z(i)
        out += [f"coalesce(h.{c}{i}, 0) + a.k * {z} AS {c}{i}" for c in ("y", "x")]
        out += [f"coalesce(h.{c}{i}, 0) + a.k * {z} * {z} AS {c}{i}" for c in ("yy", "xx", "yx")]
        out.append(f"caps.c{i}")
    for k, (a, b) in enumerate(ratios):
        if a not in capped and b not in capped:
            out.append(f"a.r{k}")
        elif a in capped and b in capped:
            out.append(f"coalesce(h.r{k}, 0) + a.k * {_z(a)} * {_z(b)} AS r{k}")
        else:
            out.append(f"coalesce(h.r{k}, 0) + {_z(a if a in capped else b)} * coalesce(a.q{k}, 0) AS r{k}")
    return out


def sums_sql(
    parts: Sequence[MetricDef],
    value: Callable[[int, str], str],
    ratios: Sequence[tuple[int, int]],
    cuped: bool,
    count: bool,
) -> str:
    """From ``m`` (``variant_id, v``: every unit's row as of now) and ``value`` (part ``i``'s ``y``, ``x``
    or ``s`` from ``m.v``), CTEs ending in ``sums``: per variant (``sv``) the columns of
    ``metric_sql.summary_sql``'s sums, with ``count`` also ``n`` (the rows)."""
    kinds = _Kinds(parts)
    capped = kinds.capped
    values = [
        f"{value(i, 'y')} AS y{i}, {value(i, 'x') if cuped else '0::float8'} AS x{i}" for i in range(kinds.n)
    ]
    values += [f"{value(i, 's')} AS s{i}" for i in sorted(kinds.skips)]
    hot = " OR ".join(f"y{i} <> 0 OR x{i} <> 0" for i in capped) or "false"
    kept = _kept(capped, ratios)
    caps = ", ".join(
        f"percentile_cont({float(parts[i].cap_percentile or 0)!r}::float8) WITHIN GROUP (ORDER BY y{i}) "
        f"FILTER (WHERE y{i} <> 0) AS c{i}"
        for i in capped
    )
    least = ", ".join([f"least(y{i}, c{i}) AS y{i}, least(x{i}, c{i}) AS x{i}" for i in capped])
    least += "".join(f", {c}" for c in kept if c.startswith("y") and int(c[1:]) not in capped)
    hot_rows = f"""hot AS (
    SELECT a.sv, t.* FROM agg a, unnest({", ".join(f"a.h_{c}" for c in kept)}) AS t({", ".join(kept)})
),
caps AS MATERIALIZED (SELECT {caps} FROM hot),
hs AS (
    SELECT hc.sv, {", ".join(_hot_sums(capped, ratios))}
    FROM (SELECT hot.sv, {least} FROM hot CROSS JOIN caps) hc GROUP BY hc.sv
),"""
    # OFFSET 0 keeps pu a subquery whose values are computed once per row (inlined, each use of a value
    # would subscript the array again).
    return f"""pu AS NOT MATERIALIZED (SELECT m.variant_id, {", ".join(values)} FROM m OFFSET 0),
agg AS MATERIALIZED (
    SELECT pu.variant_id AS sv, {", ".join(_pass(kinds, ratios, hot))} FROM pu GROUP BY pu.variant_id
),
{hot_rows if capped else "caps AS (SELECT), hs AS (SELECT NULL::uuid AS sv),"}
sums AS (
    SELECT a.sv, '' AS sd, {"a.rows AS n, " if count else ""}{", ".join(_final(kinds, ratios))}
    FROM agg a CROSS JOIN caps LEFT JOIN hs h ON h.sv = a.sv
)"""
