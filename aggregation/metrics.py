"""Aggregation's metric: rollup lag, the days between today (UTC) and the newest finalised day."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from kernel import metrics

if TYPE_CHECKING:
    import asyncpg
    from litestar.datastructures import State

    from kernel.metrics import MetricsRegistry

__all__ = ["register_metrics", "rollup_lag_days"]

LAG = metrics.gauge(
    "corp_astro_rollup_lag_days",
    "Days from the newest finalised rollup day to today (UTC); 1 when yesterday is final. NaN: none yet.",
    mode="mostrecent",
)


async def rollup_lag_days(conn: asyncpg.Connection, today: dt.date) -> float:
    """``today`` minus the newest day in ``rollup_finalisations`` (its primary key: one index probe)."""
    newest: dt.date | None = await conn.fetchval("SELECT max(day) FROM rollup_finalisations")
    return float("nan") if newest is None else float((today - newest).days)


async def _scrape(conn: asyncpg.Connection, _state: State) -> None:
    LAG.set(await rollup_lag_days(conn, dt.datetime.now(dt.UTC).date()))


def register_metrics(registry: MetricsRegistry) -> None:
    """The lag, computed at each scrape."""
    registry.on_scrape("aggregation.rollup_lag", _scrape)
