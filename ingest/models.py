"""The raw event tables, range-partitioned by month on the event's ``timestamp``, and the dedupe ledger.

Both event tables partition on the same column and the same monthly bounds, so retention drops matching
partitions together. The primary keys include ``timestamp`` because PostgreSQL requires every unique
constraint of a partitioned table to contain the partition key.

The seed's foreign key ``event_properties`` -> ``analytics_events`` is not declared: its per-row trigger
(a lookup into the partitioned parent for every property row) cuts COPY throughput about 3x (docs/schema.md,
"## Ingest"). The ingest pipeline writes properties only in the transaction that writes their event, and
nothing deletes events without their properties (retention drops both tables' partitions together).
``analytics_events.user_id`` -> ``users`` stays: it costs a few per cent once statistics are warm.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Date, ForeignKey, Index, LargeBinary, String, Text, func, text
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel.columns import created_column as _created
from kernel.columns import pk_column as _pk
from kernel.db import Base

__all__ = [
    "EVENT_PROPERTIES_TIMESTAMP",
    "PARTITIONED_TABLES",
    "AnalyticsEvent",
    "ApiSource",
    "EventProperty",
    "IngestMessageId",
]

PARTITIONED_TABLES = ("analytics_events", "event_properties")


class AnalyticsEvent(Base):
    __tablename__ = "analytics_events"
    __table_args__ = (
        Index("ix_analytics_events_event_name", "event_name"),
        Index("ix_analytics_events_event_category", "event_category"),
        Index("ix_analytics_events_timestamp", "timestamp"),
        # "Goal events ingested since X", for experiments' conversion job (created by migration 0009).
        Index("ix_analytics_events_event_name_created_at_timestamp", "event_name", "created_at", "timestamp"),
        {"postgresql_partition_by": 'RANGE ("timestamp")'},
    )

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete="SET NULL"), index=True
    )
    event_name: Mapped[str] = mapped_column(String(100), nullable=False)
    event_category: Mapped[str] = mapped_column(String(50), nullable=False)
    device_id: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    timestamp: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), primary_key=True, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    # Additions (docs/schema.md): Segment identity and provenance, so no event is lost for an unknown user.
    source_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    message_id: Mapped[str | None] = mapped_column(String(255))
    external_user_id: Mapped[str | None] = mapped_column(String(255))
    anonymous_id: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


class EventProperty(Base):
    __tablename__ = "event_properties"
    __table_args__ = (
        Index("ix_event_properties_property_name", "property_name"),
        Index("ix_event_properties_event_id", "event_id"),
        {"postgresql_partition_by": 'RANGE ("timestamp")'},
    )

    property_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Logically references analytics_events (event_id, timestamp); written only in the event's transaction.
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    property_name: Mapped[str] = mapped_column(String(100), nullable=False)
    property_value: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    # The owning event's timestamp: the partition key.
    timestamp: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), primary_key=True, nullable=False)


class IngestMessageId(Base):
    """The exactly-once ledger: one row per stored message, in the partition of the week it arrived.

    ``message_key`` is uuid5(source_id, messageId), the same on every retry of a message (its event_id is
    a fresh time-ordered UUIDv7). The event tables cannot carry a unique key without the partition key,
    and the corrected timestamp changes between retries, so dedupe lives here. ``week`` is
    the Monday of the database's UTC date when the claiming flush began (never a client's clock).
    Range-partitioned by ``week``, one partition a week: a flush claims in its week's partition and looks
    keys up in the previous week's; a week past the window is dropped whole (``ingest.ledger``).
    """

    __tablename__ = "ingest_message_ids"
    __table_args__ = ({"postgresql_partition_by": "RANGE (week)"},)

    message_key: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    week: Mapped[dt.date] = mapped_column(
        Date,
        primary_key=True,
        server_default=text("(date_trunc('week'::text, (now() AT TIME ZONE 'UTC'::text)))::date"),
    )


class ApiSource(Base):
    """A named event source (an app) and the SHA-256 of its write key; the key itself is never stored."""

    __tablename__ = "api_sources"

    source_id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


# Exports read event properties one day at a time. The table's keys do not lead with "timestamp", so
# without this every day's read scanned the whole monthly partition. Rows arrive roughly in time order, so
# a BRIN index serves the range at almost no write cost to ingest (docs/schema.md, "Aggregation").
EVENT_PROPERTIES_TIMESTAMP = Index(
    "ix_event_properties_timestamp_brin",
    EventProperty.__table__.c.timestamp,
    postgresql_using="brin",
    postgresql_with={"autosummarize": "on"},
)
