"""A/B test tables from the seed: tests, their variants and sticky per-user assignments."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = [
    "AbTest",
    "AbTestAssignment",
    "AbTestVariant",
    "AbTestVariantWeight",
    "ConversionWatermark",
    "ExperimentAnalysis",
    "ExperimentDailyResult",
    "ExperimentMetric",
    "ExperimentMetricLink",
    "ExperimentWatermark",
    "IdentityLink",
    "UnitAssignment",
    "UnitValue",
    "UnitValueMark",
]


class AbTest(Base):
    __tablename__ = "ab_tests"
    __table_args__ = col.indexes("ab_tests", "status", "start_date", "end_date")

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    start_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = col.status_column("active")
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    # Addition (docs/schema.md): an ingested event name that counts as a conversion.
    goal_event: Mapped[str | None] = mapped_column(String(100))
    # Addition (experiments): the traffic phase, bumped whenever the split changes. Assignments record
    # the phase whose weights chose them, so SRM compares each phase with its own split.
    phase: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("1"))
    # Addition (experiment units, docs/schema.md): what is assigned: ``user`` (ab_test_assignments),
    # ``anonymous`` or ``external`` (Segment ids, experiment_unit_assignments). Fixed at creation.
    unit: Mapped[str] = mapped_column(String(20), nullable=False, server_default=text("'user'"))


class AbTestVariant(Base):
    __tablename__ = "ab_test_variants"
    __table_args__ = (
        Index("ix_ab_test_variants_name", "name"),
        # Addition: a variant name is unique within its test (the API addresses variants by name).
        UniqueConstraint("test_id", "name", name="uq_ab_test_variants_test_id_name"),
        # Additions (experiments): bucket order, and exactly one control per test.
        UniqueConstraint("test_id", "position", name="uq_ab_test_variants_test_id_position"),
        Index(
            "uq_ab_test_variants_control",
            "test_id",
            unique=True,
            postgresql_where=text("is_control"),
        ),
    )

    variant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    test_id: Mapped[uuid.UUID] = col.ref_column("ab_tests.test_id")
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    traffic_percentage: Mapped[decimal.Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    # Addition: the variant's index in GrowthBook's ``variations`` list (bucket ranges follow it).
    position: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    # Addition: the baseline every other variant is compared with.
    is_control: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )


class AbTestAssignment(Base):
    __tablename__ = "ab_test_assignments"
    __table_args__ = (
        UniqueConstraint("test_id", "user_id", name="uq_ab_test_assignments_test_id_user_id"),
        Index("ix_ab_test_assignments_converted", "converted"),
        # Addition (experiments): a test's earliest assignment in one index probe, the lower bound on
        # event time of the goal-event conversion job (docs/conversions.md).
        Index("ix_ab_test_assignments_test_id_assigned_at", "test_id", "assigned_at"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), nullable=False
    )
    variant_id: Mapped[uuid.UUID] = col.ref_column("ab_test_variants.variant_id")
    user_id: Mapped[uuid.UUID] = col.ref_column("users.user_id")
    assigned_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    converted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    converted_at: Mapped[dt.datetime | None] = col.time_column()
    # Addition: the test's traffic phase when this assignment was made (see AbTest.phase).
    phase: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("1"))


class AbTestVariantWeight(Base):
    """Addition: each variant's traffic percentage in each phase (the expected split for SRM)."""

    __tablename__ = "ab_test_variant_weights"
    __table_args__ = (PrimaryKeyConstraint("variant_id", "phase", name="pk_ab_test_variant_weights"),)

    variant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_test_variants.variant_id", ondelete="CASCADE"), nullable=False
    )
    phase: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    traffic_percentage: Mapped[decimal.Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )


class ConversionWatermark(Base):
    """Addition: how far the goal-event conversion job has read ingested events, per test.

    ``ingested_through`` is compared with ``analytics_events.created_at`` (ingestion time), so each run
    reads only what was ingested since (docs/conversions.md). ``goal_event`` is the goal it was read
    for: when a test's goal changes, its watermark no longer applies and the test is read from scratch.
    """

    __tablename__ = "experiment_conversion_watermarks"

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), primary_key=True
    )
    goal_event: Mapped[str] = mapped_column(String(100), nullable=False)
    ingested_through: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )


class UnitAssignment(Base):
    """Addition: sticky assignments of the units that are not registered accounts (docs/schema.md).

    ``unit_type`` is the experiment's unit (``anonymous``: a Segment ``anonymousId``; ``external``: a
    Segment ``userId`` that need not be an account); ``unit_id`` is the id as the app sends it, the hash
    input. The seed's ``ab_test_assignments`` keeps its NOT NULL foreign key to ``users``.
    """

    __tablename__ = "experiment_unit_assignments"
    __table_args__ = (
        # One unit per test (ab_tests.unit is fixed at creation), so (test, id) is the sticky key.
        UniqueConstraint("test_id", "unit_id", name="uq_experiment_unit_assignments_test_id_unit_id"),
        Index("ix_experiment_unit_assignments_test_id_assigned_at", "test_id", "assigned_at"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), nullable=False
    )
    variant_id: Mapped[uuid.UUID] = col.ref_column("ab_test_variants.variant_id")
    unit_type: Mapped[str] = mapped_column(String(20), nullable=False)
    unit_id: Mapped[str] = mapped_column(String(255), nullable=False)
    assigned_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    converted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    converted_at: Mapped[dt.datetime | None] = col.time_column()
    phase: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("1"))


class IdentityLink(Base):
    """Addition: an anonymous id and the Segment ``userId`` an ``identify`` or ``alias`` tied it to.

    Written only by the experiments job that reads ingested identify/alias events (ingest does not know
    about it). ``user_id`` is the account the event was linked to by ingest, if any (no foreign key: the
    job copies it; erasure deletes the user's links by name). ``linked_at`` is the earliest event time
    seen for the pair.
    """

    __tablename__ = "experiment_identity_links"
    __table_args__ = (
        PrimaryKeyConstraint("anonymous_id", "external_user_id", name="pk_experiment_identity_links"),
        Index("ix_experiment_identity_links_external_user_id", "external_user_id"),
        Index("ix_experiment_identity_links_user_id", "user_id"),
        # "Links made since X" (the daily results' late-data check; migration 0015).
        Index("ix_experiment_identity_links_created_at", "created_at"),
    )

    anonymous_id: Mapped[str] = mapped_column(String(255), nullable=False)
    external_user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    linked_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )


class ExperimentWatermark(Base):
    """Addition: how far (``analytics_events.created_at``) an experiments job has read, per job name."""

    __tablename__ = "experiment_watermarks"

    job: Mapped[str] = mapped_column(String(50), primary_key=True)
    ingested_through: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )


class ExperimentMetric(Base):
    """Addition: a metric computed from ingested events, defined once and used by any experiment.

    ``kind`` is binomial, count, sum, mean, ratio or retention (docs/experiments-metrics.md); a ratio
    names two other metrics and no event. ``direction`` is the way that counts as good.
    """

    __tablename__ = "experiment_metrics"
    # "Is this metric a ratio's part?" before a change of kind (and the FKs' own checks on delete).
    __table_args__ = col.indexes("experiment_metrics", "numerator_id", "denominator_id")

    metric_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    event_name: Mapped[str | None] = mapped_column(String(100))
    property_name: Mapped[str | None] = mapped_column(String(100))
    numerator_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("experiment_metrics.metric_id", ondelete="RESTRICT")
    )
    denominator_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("experiment_metrics.metric_id", ondelete="RESTRICT")
    )
    window_hours: Mapped[int | None] = mapped_column(Integer)
    retention_from_day: Mapped[int | None] = mapped_column(SmallInteger)
    retention_to_day: Mapped[int | None] = mapped_column(SmallInteger)
    cap_percentile: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )


class ExperimentMetricLink(Base):
    """Addition: an experiment's metrics, each with its role (primary, secondary, guardrail) and order."""

    __tablename__ = "experiment_metric_links"
    __table_args__ = (
        PrimaryKeyConstraint("test_id", "metric_id", name="pk_experiment_metric_links"),
        Index("ix_experiment_metric_links_metric_id", "metric_id"),
    )

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), nullable=False
    )
    metric_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("experiment_metrics.metric_id", ondelete="RESTRICT"), nullable=False
    )
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    position: Mapped[int] = mapped_column(SmallInteger, nullable=False)


class ExperimentAnalysis(Base):
    """Addition: an experiment's analysis settings (CUPED and its lookback, the correction); a test
    without a row has the defaults (CUPED on, 14 days, Holm)."""

    __tablename__ = "experiment_analysis"

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), primary_key=True
    )
    cuped_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    cuped_lookback_days: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("14"))
    correction: Mapped[str] = mapped_column(String(10), nullable=False, server_default=text("'holm'"))


class ExperimentDailyResult(Base):
    """Addition: the daily series' cache: per test and closed UTC day, the rows of the results statement
    as of the end of that day (``sums``), and what tells whether they still hold (docs/schema.md).

    ``analysis_hash``: the statement and parameters they were computed with (metrics, CUPED, unit);
    ``ingested_through``: the data watermark (``analytics_events.created_at`` and
    ``experiment_identity_links.created_at``): ``tail_events``/``tail_links`` are the metric events
    (timestamp before the day's end) and the links to the test's units exposed by then that were
    created after it, counted when the watermark was set; more of them now means late data.
    """

    __tablename__ = "experiment_daily_results"

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    analysis_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    sums: Mapped[list[dict[str, object]]] = mapped_column(JSON, nullable=False)
    computed_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    ingested_through: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    tail_events: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tail_links: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checked_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)


class UnitValue(Base):
    """Addition: one assigned unit's metric state in an experiment (docs/experiments-metrics.md).

    ``user_id``: the unit's account, for user units. ``v`` holds, per event metric of the experiment's
    analysis in order, the unit's additive pieces over the events folded so far: the value after exposure
    within the metric's window and over the CUPED lookback before it (a sum, a count, or a 0/1 maximum),
    the skipped property values, and for a mean also the two numbers of values.
    ``experiment_unit_value_marks`` says which definition and which
    ingested events they are for.
    """

    __tablename__ = "experiment_unit_values"
    __table_args__ = (
        # A user unit's row goes with its assignment (an erasure): rows never outnumber assignments.
        ForeignKeyConstraint(
            ["test_id", "user_id"],
            ["ab_test_assignments.test_id", "ab_test_assignments.user_id"],
            ondelete="CASCADE",
        ),
        Index("ix_experiment_unit_values_test_id_user_id", "test_id", "user_id"),
    )

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    variant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    exposed_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    v: Mapped[list[float]] = mapped_column(ARRAY(Float), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class UnitValueMark(Base):
    """Addition: per experiment, the analysis definition (a hash) its ``experiment_unit_values`` were
    built for and the ingestion time (``analytics_events.created_at``) they include events up to."""

    __tablename__ = "experiment_unit_value_marks"

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), primary_key=True
    )
    definition: Mapped[str] = mapped_column(String(64), nullable=False)
    ingested_through: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
