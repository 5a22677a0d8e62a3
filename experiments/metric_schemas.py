"""Bodies of the metrics API and of per-metric results (msgspec Structs).

A metric is ``{name, kind, event, property?, numerator?, denominator?, window_hours?, cap_percentile?,
retention_days?, direction}`` (docs/experiments-metrics.md). Decoding uses ``experiments.schemas.decode``
so the error shape is the API's one; the service checks what depends on the kind.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "CupedIn",
    "CupedOut",
    "DailyMetric",
    "DailyPoint",
    "DailyResultsOut",
    "DailyVariant",
    "DimensionResultsOut",
    "DimensionSlice",
    "Direction",
    "MetricComparison",
    "MetricCreate",
    "MetricKind",
    "MetricOut",
    "MetricPatch",
    "MetricResult",
    "MetricVariant",
    "Role",
]

MetricKind = Literal["binomial", "count", "sum", "mean", "ratio", "retention"]
Direction = Literal["increase", "decrease"]
Role = Literal["primary", "secondary", "guardrail"]
MetricName = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
EventName = Annotated[str, Meta(min_length=1, max_length=100)]
PropertyName = Annotated[str, Meta(min_length=1, max_length=100)]
Description = Annotated[str, Meta(max_length=10_000)]
# Up to a year after exposure.
WindowHours = Annotated[int, Meta(ge=1, le=8784)]
RetentionDays = Annotated[list[Annotated[int, Meta(ge=0, le=366)]], Meta(min_length=2, max_length=2)]
CapPercentile = Annotated[float, Meta(gt=0, lt=1)]
LookbackDays = Annotated[int, Meta(ge=1, le=90)]


class MetricCreate(Struct, forbid_unknown_fields=True):
    """``POST /v1/metrics``."""

    name: MetricName
    kind: MetricKind
    direction: Direction
    event: EventName | None = None
    property: PropertyName | None = None
    numerator: MetricName | None = None
    denominator: MetricName | None = None
    window_hours: WindowHours | None = None
    retention_days: RetentionDays | None = None
    cap_percentile: CapPercentile | None = None
    description: Description | None = None


class MetricPatch(Struct, forbid_unknown_fields=True):
    """``PATCH /v1/metrics/{name}``: any field but the name; ``null`` clears an optional one."""

    kind: MetricKind | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET
    event: EventName | UnsetType | None = UNSET
    property: PropertyName | UnsetType | None = UNSET
    numerator: MetricName | UnsetType | None = UNSET
    denominator: MetricName | UnsetType | None = UNSET
    window_hours: WindowHours | UnsetType | None = UNSET
    retention_days: RetentionDays | UnsetType | None = UNSET
    cap_percentile: CapPercentile | UnsetType | None = UNSET
    description: Description | UnsetType | None = UNSET


class MetricOut(Struct):
    metric_id: uuid.UUID
    name: str
    kind: str
    event: str | None
    property: str | None
    numerator: str | None
    denominator: str | None
    window_hours: int | None
    retention_days: list[int] | None
    cap_percentile: float | None
    direction: str
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CupedIn(Struct, forbid_unknown_fields=True):
    """An experiment's ``cuped`` setting."""

    enabled: bool = True
    lookback_days: LookbackDays = 14


class CupedOut(Struct):
    enabled: bool = True
    lookback_days: int = 14


class MetricVariant(Struct):
    """One variant's value of a metric: units, the mean per unit (a ratio: Σnumerator / Σdenominator)."""

    name: str
    units: int
    mean: float | None
    # sum/count/mean: the per-unit total over all units; binomial/retention: units that did it.
    total: float | None


class MetricComparison(Struct):
    variant: str
    absolute_lift: float | None
    absolute_ci: tuple[float, float] | None
    relative_lift: float | None
    relative_ci: tuple[float, float] | None
    p_value: float | None
    adjusted_p_value: float | None
    significant: bool
    chance_to_beat_control: float | None
    sequential_p_value: float | None
    cuped: bool
    # Guardrails only: the metric moved against its direction, significantly (alpha, uncorrected).
    harm: bool | None = None
    note: str | None = None


class MetricResult(Struct):
    metric: str
    role: Role
    kind: str
    direction: str
    variants: list[MetricVariant]
    comparisons: list[MetricComparison]
    # The winsorisation cap applied per unit (a percentile of the pooled unit values), if any.
    cap_value: float | None = None
    # sum/mean: property values that were not numbers, skipped.
    skipped_values: int = 0
    note: str | None = None


class DimensionSlice(Struct):
    """One value of the dimension (or ``other``, the values past the top N; ``unknown``: units whose events
    never carried it), with every metric's result within it."""

    value: str
    units: int
    metrics: list[MetricResult]


class DimensionResultsOut(Struct):
    experiment: str
    dimension: str
    # Always true: slices are for exploring; their p-values are not corrected (and not in the main family).
    exploratory: bool
    top: int
    slices: list[DimensionSlice]
    note: str | None = None


class DailyVariant(Struct):
    """A variant's cumulative units and metric mean as of the end of a day, with the mean's CI."""

    name: str
    units: int
    mean: float | None
    ci: tuple[float, float] | None


class DailyPoint(Struct):
    day: dt.date
    variants: list[DailyVariant]


class DailyMetric(Struct):
    metric: str
    role: Role
    days: list[DailyPoint]


class DailyResultsOut(Struct):
    experiment: str
    alpha: float
    metrics: list[DailyMetric]
    note: str | None = None
