"""Request and response bodies (msgspec Structs); ``decode`` is the kernel's body decoder.

The routes read their bodies themselves and decode them with ``kernel.body.decode_json``, which answers
as every route does (docs/errors.md): 400 ``invalid_json`` for a body that is not a JSON object, 422
``validation_error`` naming the fields whose values do not fit.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, field

from experiments.metric_schemas import CupedIn, CupedOut, MetricName, MetricResult
from experiments.stats import Correction
from kernel.body import decode_json as decode

__all__ = [
    "AssignmentOut",
    "Comparison",
    "ConversionOut",
    "ExperimentCreate",
    "ExperimentOut",
    "ExperimentPatch",
    "PowerOut",
    "ResultsOut",
    "SrmOut",
    "UserAssignmentsOut",
    "UserRef",
    "VariantIn",
    "VariantOut",
    "VariantResult",
    "VariantTraffic",
    "decode",
]

# Names appear in URLs and are GrowthBook's hash seed, so they stay URL-safe and stable.
ExperimentName = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
VariantName = Annotated[str, Meta(min_length=1, max_length=100)]
Description = Annotated[str, Meta(max_length=10_000)]
EventName = Annotated[str, Meta(min_length=1, max_length=100)]
Status = Literal["active", "paused", "completed"]
# What an experiment assigns (docs/experiment-units.md); fixed at creation.
Unit = Literal["user", "anonymous", "external"]
# A Segment anonymousId or userId, as ingest stores them (analytics_events, VARCHAR(255)).
SegmentId = Annotated[str, Meta(min_length=1, max_length=255)]


class VariantIn(Struct, forbid_unknown_fields=True):
    """A variant of a new experiment; ``traffic_percentage`` has at most 2 decimals."""

    name: VariantName
    traffic_percentage: decimal.Decimal
    description: Description | None = None


class ExperimentCreate(Struct, forbid_unknown_fields=True):
    """``POST /v1/experiments``."""

    name: ExperimentName
    start_date: dt.date
    variants: Annotated[list[VariantIn], Meta(min_length=2, max_length=26)]
    description: Description | None = None
    end_date: dt.date | None = None
    control: VariantName | None = None
    goal_event: EventName | None = None
    # Metrics (docs/experiments-metrics.md): names from /v1/metrics, and the analysis settings.
    primary_metric: MetricName | None = None
    secondary_metrics: Annotated[list[MetricName], Meta(max_length=20)] = field(default_factory=list)
    guardrail_metrics: Annotated[list[MetricName], Meta(max_length=20)] = field(default_factory=list)
    cuped: CupedIn | None = None
    correction: Correction = "holm"
    unit: Unit = "user"


class VariantTraffic(Struct, forbid_unknown_fields=True):
    """A new percentage for an existing variant."""

    name: VariantName
    traffic_percentage: decimal.Decimal


class ExperimentPatch(Struct, forbid_unknown_fields=True):
    """``PATCH /v1/experiments/{name}``: every field optional; ``null`` clears end_date/description."""

    status: Status | UnsetType = UNSET
    end_date: dt.date | UnsetType | None = UNSET
    description: Description | UnsetType | None = UNSET
    goal_event: EventName | UnsetType | None = UNSET
    primary_metric: MetricName | UnsetType | None = UNSET
    secondary_metrics: Annotated[list[MetricName], Meta(max_length=20)] | UnsetType = UNSET
    guardrail_metrics: Annotated[list[MetricName], Meta(max_length=20)] | UnsetType = UNSET
    cuped: CupedIn | UnsetType = UNSET
    correction: Correction | UnsetType = UNSET
    variants: Annotated[list[VariantTraffic], Meta(max_length=26)] | UnsetType = UNSET


class UserRef(Struct):
    """The unit of an assignment or conversion: exactly one of ``user_id`` (a registered account, parsed
    as a UUID), ``anonymous_id`` or ``external_user_id`` (Segment ids), matching the experiment's unit.
    The service checks the choice (422 ``validation_error`` otherwise)."""

    user_id: str | None = None
    anonymous_id: SegmentId | None = None
    external_user_id: SegmentId | None = None


class VariantOut(Struct):
    """A variant; ``weight`` is the exact GrowthBook weight (pass it to an SDK rather than pct / 100)."""

    variant_id: uuid.UUID
    name: str
    description: str | None
    traffic_percentage: float
    weight: float
    is_control: bool


class ExperimentOut(Struct):
    test_id: uuid.UUID
    name: str
    description: str | None
    status: str
    start_date: dt.date
    end_date: dt.date | None
    control: str
    phase: int
    goal_event: str | None
    running: bool
    variants: list[VariantOut]
    created_at: dt.datetime
    updated_at: dt.datetime
    primary_metric: str | None = None
    secondary_metrics: list[str] = field(default_factory=list)
    guardrail_metrics: list[str] = field(default_factory=list)
    cuped: CupedOut = field(default_factory=CupedOut)
    correction: str = "holm"
    unit: str = "user"


class AssignmentOut(Struct):
    experiment: str
    variant: str
    assigned_at: dt.datetime
    new: bool


class UserAssignmentsOut(Struct):
    user_id: uuid.UUID
    assignments: list[AssignmentOut]


class ConversionOut(Struct):
    experiment: str
    variant: str
    converted_at: dt.datetime
    new: bool


class VariantResult(Struct):
    name: str
    users: int
    conversions: int
    conversion_rate: float | None
    expected_share: float


class Comparison(Struct):
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
    note: str | None = None


class SrmOut(Struct):
    p_value: float
    detected: bool


class PowerOut(Struct):
    mde_at_current_n: float | None
    users_needed_for_mde: int | None
    mde_absolute_at_current_n: float | None
    target_mde: float
    power: float
    note: str | None = None


class ResultsOut(Struct):
    experiment: str
    status: str
    control: str
    alpha: float
    phase: int
    variants: list[VariantResult]
    comparisons: list[Comparison]
    srm: SrmOut
    power: PowerOut
    # Per metric (docs/experiments-metrics.md): the goal-event conversion is the primary metric when no
    # primary_metric is set; p-values of primary and secondary metrics are adjusted by ``correction``.
    metrics: list[MetricResult] = field(default_factory=list)
    correction: str = "holm"
