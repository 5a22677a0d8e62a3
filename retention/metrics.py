"""Retention's metric: how long the oldest row has sat in the events' default partition.

Rows land there only when no monthly partition covers their time; retention's job moves them out. An
empty default partition reads 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel import metrics
from retention.repository import EVENT_PARENT

if TYPE_CHECKING:
    import asyncpg
    from litestar.datastructures import State

    from kernel.metrics import MetricsRegistry

__all__ = ["default_partition_oldest_age", "register_metrics"]

AGE = metrics.gauge(
    "corp_astro_default_partition_oldest_event_age_seconds",
    "Seconds since the oldest row of the events' default partition was stored (0: the partition is empty).",
    mode="mostrecent",
)


async def default_partition_oldest_age(conn: asyncpg.Connection) -> float:
    """Seconds since the oldest stored row of ``analytics_events_default`` (0 if empty). A scan of the
    default partition, which is empty or small in a healthy system; the scrape's statement timeout
    bounds it otherwise."""
    age = await conn.fetchval(
        f"SELECT extract(epoch FROM localtimestamp - min(created_at))::float8 FROM {EVENT_PARENT}_default"
    )
    return 0.0 if age is None else max(0.0, float(age))


async def _scrape(conn: asyncpg.Connection, _state: State) -> None:
    AGE.set(await default_partition_oldest_age(conn))


def register_metrics(registry: MetricsRegistry) -> None:
    """The age, computed at each scrape."""
    registry.on_scrape("retention.default_partition", _scrape)
