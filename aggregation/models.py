"""Rollup tables, the job-run ledger, the retention hand-off and export records (docs/schema.md).

Every rollup row is recomputed from raw events for a whole period at a time (delete the period's rows,
insert the new ones, in one transaction), so a re-run replaces rather than adds and groups that vanished
from the raw data vanish from the rollup too.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = [
    "ActiveUserSet",
    "ActiveUsersDaily",
    "AggregationRun",
    "EventRollupDaily",
    "EventRollupHourly",
    "ExperimentDaily",
    "Export",
    "RollupFinalisation",
]


class EventRollupHourly(Base):
    """Per UTC hour, event name and category: events and distinct users, devices, sessions."""

    __tablename__ = "event_rollups_hourly"

    period: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), primary_key=True)
    event_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_category: Mapped[str] = mapped_column(String(50), primary_key=True)
    events: Mapped[int] = col.count_column()
    users: Mapped[int] = col.count_column()
    devices: Mapped[int] = col.count_column()
    sessions: Mapped[int] = col.count_column()
    computed_at: Mapped[dt.datetime] = col.created_column()


class EventRollupDaily(Base):
    """Per UTC day, event name and category; distinct counts are over the whole day, not summed hours."""

    __tablename__ = "event_rollups_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    event_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_category: Mapped[str] = mapped_column(String(50), primary_key=True)
    events: Mapped[int] = col.count_column()
    users: Mapped[int] = col.count_column()
    devices: Mapped[int] = col.count_column()
    sessions: Mapped[int] = col.count_column()
    computed_at: Mapped[dt.datetime] = col.created_column()


class ActiveUsersDaily(Base):
    """Exact DAU, WAU (7 days ending ``day``) and MAU (30 days ending ``day``)."""

    __tablename__ = "active_users_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    dau: Mapped[int] = col.count_column()
    wau: Mapped[int] = col.count_column()
    mau: Mapped[int] = col.count_column()
    computed_at: Mapped[dt.datetime] = col.created_column()


class ActiveUserSet(Base):
    """The exact set of people active on a day (Arrow IPC, zstd), so WAU/MAU never rescan 30 days of raw.

    Kept only while the day's raw events exist: the daily job deletes the sets of finalised days whose
    raw events are gone.
    """

    __tablename__ = "active_user_sets"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    people: Mapped[int] = col.count_column()
    members: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    computed_at: Mapped[dt.datetime] = col.created_column()


class ExperimentDaily(Base):
    """Per experiment, variant and UTC day: assignments made that day and conversions that day."""

    __tablename__ = "experiment_daily"

    test_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ab_tests.test_id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("ab_test_variants.variant_id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    assigned: Mapped[int] = col.count_column()
    converted: Mapped[int] = col.count_column()
    computed_at: Mapped[dt.datetime] = col.created_column()


class AggregationRun(Base):
    """The run ledger: the last run of each (job, period), with the raw-data watermark it saw.

    ``source_events`` / ``source_max_created_at`` are the count and newest ``created_at`` of the raw events
    the run read; a period whose current values differ has late (or deleted) data and is re-aggregated.
    """

    __tablename__ = "aggregation_runs"
    __table_args__ = col.indexes("aggregation_runs", "status")

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    source_events: Mapped[int | None] = mapped_column(BigInteger)
    source_max_created_at: Mapped[dt.datetime | None] = col.time_column()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    started_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    finished_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)


class RollupFinalisation(Base):
    """Days whose rollups were checked against raw events (contract with retention): never recomputed."""

    __tablename__ = "rollup_finalisations"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    raw_events: Mapped[int] = col.count_column()
    rollup_events: Mapped[int] = col.count_column()
    finalised_at: Mapped[dt.datetime] = col.created_column()


class Export(Base):
    """An analyst's Parquet export requested through the API; the file lives under the data dir."""

    __tablename__ = "exports"
    __table_args__ = col.indexes("exports", "status")

    export_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete="SET NULL"), index=True
    )
    date_from: Mapped[dt.date] = mapped_column(Date, nullable=False)
    date_to: Mapped[dt.date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    rows: Mapped[int | None] = mapped_column(BigInteger)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = col.created_column()
    started_at: Mapped[dt.datetime | None] = col.time_column()
    heartbeat_at: Mapped[dt.datetime | None] = col.time_column()
    finished_at: Mapped[dt.datetime | None] = col.time_column()
