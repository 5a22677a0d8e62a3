"""This process's delivery counters: attempts by outcome, attempt latency, time from queue to first try."""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from typing import Any

__all__ = ["Metrics", "quantile"]

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
