"""Operations' metrics: the last successful full backup and the last verify's result, read from the
backup directory at each scrape (``operations.backup_status``: files only, no PostgreSQL program)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel import metrics
from operations import backup_status

if TYPE_CHECKING:
    import asyncpg
    from litestar.datastructures import State

    from kernel.metrics import MetricsRegistry

__all__ = ["register_metrics"]

LAST_SUCCESS = metrics.gauge(
    "corp_astro_backup_last_success_timestamp_seconds",
    "Unix time the newest completed base backup finished (0: none).",
    mode="mostrecent",
)
VERIFY_RESULT = metrics.gauge(
    "corp_astro_backup_verify_last_result",
    "The last backup verify: 1 passed, 0 failed, -1 never run.",
    mode="mostrecent",
)


async def _scrape(_conn: asyncpg.Connection, state: State) -> None:
    status = backup_status(state.settings.data_dir)
    LAST_SUCCESS.set(status.last_full_timestamp or 0.0)
    VERIFY_RESULT.set(-1 if status.last_verify_ok is None else int(status.last_verify_ok))


def register_metrics(registry: MetricsRegistry) -> None:
    """The backup gauges, read at each scrape."""
    registry.on_scrape("operations.backup", _scrape)
