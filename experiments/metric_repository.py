"""SQL of metric definitions and of each experiment's metrics and analysis settings (asyncpg)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg

from experiments.metric_definitions import Analysis, LinkedMetric, MetricDef

__all__ = [
    "fetch_analyses",
    "fetch_metric",
    "fetch_metrics",
    "fetch_metrics_page",
    "insert_metric",
    "is_ratio_part",
    "metric_from_row",
    "save_analysis",
    "update_metric",
]

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection

_COLUMNS = (
    "kind",
    "event_name",
    "property_name",
    "numerator_id",
    "denominator_id",
    "window_hours",
    "retention_from_day",
    "retention_to_day",
    "cap_percentile",
    "direction",
    "description",
)

# A metric with its ratio parts, one level deep (a ratio's parts are never ratios), as JSON-free columns.
_PART = (
    "{p}.metric_id AS {p}_id, {p}.name AS {p}_name, {p}.kind AS {p}_kind, {p}.direction AS {p}_direction, "
    + ", ".join(
        f"{{p}}.{c} AS {{p}}_{c}"
        for c in (
            "event_name",
            "property_name",
            "window_hours",
            "retention_from_day",
            "retention_to_day",
            "cap_percentile",
        )
    )
)
_SELECT = f"""
SELECT m.metric_id, m.name, m.kind, m.event_name, m.property_name, m.window_hours, m.retention_from_day,
       m.retention_to_day, m.cap_percentile, m.direction, m.description, m.created_at, m.updated_at,
       {_PART.format(p="num")}, {_PART.format(p="den")}
FROM experiment_metrics m
LEFT JOIN experiment_metrics num ON num.metric_id = m.numerator_id
LEFT JOIN experiment_metrics den ON den.metric_id = m.denominator_id
"""


def _part(row: asyncpg.Record, p: str) -> MetricDef | None:
    if row[f"{p}_id"] is None:
        return None
    return MetricDef(
        metric_id=row[f"{p}_id"],
        name=row[f"{p}_name"],
        kind=row[f"{p}_kind"],
        direction=row[f"{p}_direction"],
        event=row[f"{p}_event_name"],
        property_name=row[f"{p}_property_name"],
        window_hours=row[f"{p}_window_hours"],
        retention_days=_days(row[f"{p}_retention_from_day"], row[f"{p}_retention_to_day"]),
        cap_percentile=row[f"{p}_cap_percentile"],
    )


def _days(lo: int | None, hi: int | None) -> tuple[int, int] | None:
    return None if lo is None or hi is None else (lo, hi)


def metric_from_row(row: asyncpg.Record) -> MetricDef:
    """A definition from a ``_SELECT`` row."""
    return MetricDef(
        metric_id=row["metric_id"],
        name=row["name"],
        kind=row["kind"],
        direction=row["direction"],
        event=row["event_name"],
        property_name=row["property_name"],
        numerator=_part(row, "num"),
        denominator=_part(row, "den"),
        window_hours=row["window_hours"],
        retention_days=_days(row["retention_from_day"], row["retention_to_day"]),
        cap_percentile=row["cap_percentile"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def fetch_metric(db: Executor, name: str, *, for_update: bool = False) -> MetricDef | None:
    """One metric by name; ``for_update`` locks its row first."""
    if (
        for_update
        and await db.fetchval("SELECT metric_id FROM experiment_metrics WHERE name = $1 FOR UPDATE", name)
        is None
    ):
        return None
    row = await db.fetchrow(_SELECT + " WHERE m.name = $1", name)
    return metric_from_row(row) if row else None


async def fetch_metrics(db: Executor, names: Sequence[str]) -> dict[str, MetricDef]:
    """The metrics among ``names`` that exist, by name."""
    rows = await db.fetch(_SELECT + " WHERE m.name = ANY($1::text[])", list(names))
    return {r["name"]: metric_from_row(r) for r in rows}


async def fetch_metrics_page(db: Executor, after: str | None, limit: int) -> list[MetricDef]:
    """Up to ``limit`` metrics in name order, after ``after``."""
    rows = await db.fetch(
        _SELECT + " WHERE $1::text IS NULL OR m.name > $1 ORDER BY m.name LIMIT $2", after, limit
    )
    return [metric_from_row(r) for r in rows]


async def insert_metric(conn: asyncpg.Connection, name: str, fields: dict[str, Any]) -> uuid.UUID | None:
    """Insert a metric (``fields`` keyed by ``_COLUMNS``); None if the name is taken."""
    values = [fields.get(c) for c in _COLUMNS]
    placeholders = ", ".join(f"${i + 2}" for i in range(len(_COLUMNS)))
    metric_id: uuid.UUID | None = await conn.fetchval(
        f"INSERT INTO experiment_metrics (name, {', '.join(_COLUMNS)}) VALUES ($1, {placeholders}) "
        "ON CONFLICT (name) DO NOTHING RETURNING metric_id",
        name,
        *values,
    )
    return metric_id


async def update_metric(conn: asyncpg.Connection, metric_id: uuid.UUID, fields: dict[str, Any]) -> None:
    """Set every definition column (``fields`` keyed by ``_COLUMNS``) and updated_at."""
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(_COLUMNS))
    await conn.execute(
        f"UPDATE experiment_metrics SET {sets}, updated_at = CURRENT_TIMESTAMP WHERE metric_id = $1",
        metric_id,
        *[fields.get(c) for c in _COLUMNS],
    )


async def fetch_analyses(db: Executor, test_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Analysis]:
    """Each test's metrics (with roles) and settings; tests with neither are left out (defaults)."""
    settings = await db.fetch(
        "SELECT test_id, cuped_enabled, cuped_lookback_days, correction FROM experiment_analysis "
        "WHERE test_id = ANY($1::uuid[])",
        list(test_ids),
    )
    links = await db.fetch(
        _SELECT.replace("SELECT ", "SELECT l.test_id, l.role, l.position, ", 1)
        + " JOIN experiment_metric_links l ON l.metric_id = m.metric_id WHERE l.test_id = ANY($1::uuid[])",
        list(test_ids),
    )
    out: dict[uuid.UUID, Analysis] = {
        r["test_id"]: Analysis((), r["cuped_enabled"], r["cuped_lookback_days"], r["correction"])
        for r in settings
    }
    for r in links:
        a = out.get(r["test_id"], Analysis())
        linked = LinkedMetric(metric_from_row(r), r["role"], r["position"])
        out[r["test_id"]] = Analysis(
            (*a.metrics, linked), a.cuped_enabled, a.cuped_lookback_days, a.correction
        )
    return out


async def save_analysis(
    conn: asyncpg.Connection,
    test_id: uuid.UUID,
    links: Sequence[tuple[uuid.UUID, str, int]] | None,
    settings: tuple[bool, int, str] | None,
) -> None:
    """Replace the test's metric links (if given) and upsert its settings (if given)."""
    if links is not None:
        await conn.execute("DELETE FROM experiment_metric_links WHERE test_id = $1", test_id)
        await conn.execute(
            """INSERT INTO experiment_metric_links (test_id, metric_id, role, position)
               SELECT $1, m, r, p FROM unnest($2::uuid[], $3::text[], $4::smallint[]) AS x(m, r, p)""",
            test_id,
            [link[0] for link in links],
            [link[1] for link in links],
            [link[2] for link in links],
        )
    if settings is not None:
        await conn.execute(
            """INSERT INTO experiment_analysis (test_id, cuped_enabled, cuped_lookback_days, correction)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (test_id) DO UPDATE SET cuped_enabled = excluded.cuped_enabled,
                   cuped_lookback_days = excluded.cuped_lookback_days, correction = excluded.correction""",
            test_id,
            *settings,
        )


async def is_ratio_part(db: Executor, metric_id: uuid.UUID) -> bool:
    """Whether a ratio metric uses this metric as its numerator or denominator."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM experiment_metrics WHERE numerator_id = $1 OR denominator_id = $1)",
            metric_id,
        )
    )
