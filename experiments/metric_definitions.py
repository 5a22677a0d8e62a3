"""Metric definitions and an experiment's analysis settings, as the results code reads them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

__all__ = ["DEFAULT_LOOKBACK_DAYS", "Analysis", "LinkedMetric", "MetricDef", "with_goal"]

DEFAULT_LOOKBACK_DAYS = 14


@dataclass(frozen=True, slots=True)
class MetricDef:
    """A metric over ingested events (a ratio: over two other metrics, its ``numerator``/``denominator``)."""

    metric_id: uuid.UUID
    name: str
    kind: str
    direction: str
    event: str | None = None
    property_name: str | None = None
    numerator: MetricDef | None = None
    denominator: MetricDef | None = None
    window_hours: int | None = None
    retention_days: tuple[int, int] | None = None
    cap_percentile: float | None = None
    description: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def binary(self) -> bool:
        """0/1 per unit (a proportion): binomial and retention."""
        return self.kind in ("binomial", "retention")

    @property
    def parts(self) -> tuple[MetricDef, ...]:
        """The event metrics this one is computed from: itself, or a ratio's two."""
        if self.numerator is not None and self.denominator is not None:
            return (self.numerator, self.denominator)
        return (self,)


@dataclass(frozen=True, slots=True)
class LinkedMetric:
    """A metric in an experiment, with its role and its place in that role's list."""

    metric: MetricDef
    role: str
    position: int


@dataclass(frozen=True, slots=True)
class Analysis:
    """An experiment's metrics and analysis settings (the defaults when nothing was set)."""

    metrics: tuple[LinkedMetric, ...] = ()
    cuped_enabled: bool = True
    cuped_lookback_days: int = DEFAULT_LOOKBACK_DAYS
    correction: str = "holm"

    def of_role(self, role: str) -> list[str]:
        """Metric names of one role, in order."""
        return [m.metric.name for m in sorted(self.metrics, key=lambda m: m.position) if m.role == role]


def with_goal(analysis: Analysis, goal_event: str | None) -> Analysis:
    """The experiment's metrics; without any, its ``goal_event``'s conversion as the binomial primary
    metric it is (the goal event at or after exposure, no CUPED: what the main results show for it)."""
    if analysis.metrics or goal_event is None:
        return analysis
    goal = MetricDef(uuid.UUID(int=0), goal_event, "binomial", "increase", event=goal_event)
    return Analysis((LinkedMetric(goal, "primary", 0),), cuped_enabled=False)
