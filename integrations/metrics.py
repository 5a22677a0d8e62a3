"""This process's delivery counters: attempts by outcome, attempt latency, time from queue to first try."""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from kernel import metrics

if TYPE_CHECKING:
    import asyncpg
    from litestar.datastructures import State

    from kernel.metrics import MetricsRegistry

__all__ = ["Metrics", "quantile", "register_metrics", "workflow_queue_stats"]

_WINDOW = 10_000  # the latest attempts the quantiles are computed over


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class Metrics:
    """Counters since start-up; latencies over the last ``_WINDOW`` attempts."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latency: deque[float] = deque(maxlen=_WINDOW)
        self.queue_wait: deque[float] = deque(maxlen=_WINDOW)

    def started(self, delivery: Any) -> None:
        """An attempt starts: for a first attempt, how long the delivery waited since it was queued."""
        if delivery["attempts"] == 1:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            self.queue_wait.append(max(0.0, (now - delivery["queued_at"]).total_seconds()))

    def finished(self, outcome: str, seconds: float) -> None:
        """An attempt ended as ``outcome`` (delivered, retrying, failed, disabled, lost_claim)."""
        self.outcomes[outcome] += 1
        if outcome != "disabled":
            self.latency.append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """Counts by outcome and latency quantiles, in seconds."""
        latency, wait = list(self.latency), list(self.queue_wait)
        return {
            "outcomes": dict(self.outcomes),
            "attempt_seconds_p50": quantile(latency, 0.5),
            "attempt_seconds_p99": quantile(latency, 0.99),
            "first_attempt_wait_seconds_p99": quantile(wait, 0.99),
        }


# --- Prometheus (GET /metrics): the queues' depth and age, read from the database at each scrape -----

WEBHOOK_PENDING = metrics.gauge(
    "corp_astro_webhook_deliveries_pending", "Webhook deliveries waiting to be sent.", mode="mostrecent"
)
WEBHOOK_AGE = metrics.gauge(
    "corp_astro_webhook_queue_oldest_due_seconds",
    "How long the oldest due webhook delivery has waited (0: none due).",
    mode="mostrecent",
)
WORKFLOW_DUE = metrics.gauge(
    "corp_astro_workflow_executions_due", "Workflow executions whose next step is due.", mode="mostrecent"
)
WORKFLOW_AGE = metrics.gauge(
    "corp_astro_workflow_queue_oldest_due_seconds",
    "How long the oldest due workflow step has waited (0: none due).",
    mode="mostrecent",
)


async def workflow_queue_stats(conn: asyncpg.Connection) -> tuple[int, float]:
    """Executions due now and the age in seconds of the oldest due one (the runner's due index)."""
    row = await conn.fetchrow(
        """SELECT count(*) AS due,
                  coalesce(extract(epoch FROM localtimestamp - min(due_at)), 0)::float8 AS oldest
           FROM workflow_executions
           WHERE status IN ('pending', 'running', 'waiting') AND due_at <= localtimestamp"""
    )
    return int(row["due"]), max(0.0, float(row["oldest"]))


async def _scrape(conn: asyncpg.Connection, _state: State) -> None:
    from integrations import queue

    row = await queue.queue_stats(conn)
    WEBHOOK_PENDING.set(row["pending"])
    WEBHOOK_AGE.set(row["oldest_due_seconds"])
    due, oldest = await workflow_queue_stats(conn)
    WORKFLOW_DUE.set(due)
    WORKFLOW_AGE.set(oldest)


def register_metrics(registry: MetricsRegistry) -> None:
    """The webhook and workflow queues, computed at each scrape."""
    registry.on_scrape("integrations.queues", _scrape)
