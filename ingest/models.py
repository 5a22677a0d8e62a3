"""The raw event tables, range-partitioned by month on the event's ``timestamp``.

Both tables partition on the same column and the same monthly bounds, so retention drops matching
partitions together. The primary keys include ``timestamp`` because PostgreSQL requires every unique
constraint of a partitioned table to contain the partition key.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, Text, func
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from core_api.db import Base

__all__ = ["PARTITIONED_TABLES", "AnalyticsEvent", "EventProperty"]

PARTITIONED_TABLES = ("analytics_events", "event_properties")


class AnalyticsEvent(Base):
    __tablename__ = "analytics_events"
    __table_args__ = (
        Index("ix_analytics_events_event_name", "event_name"),
        Index("ix_analytics_events_event_category", "event_category"),
        Index("ix_analytics_events_timestamp", "timestamp"),
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
        ForeignKeyConstraint(
            ["event_id", "timestamp"],
            ["analytics_events.event_id", "analytics_events.timestamp"],
            name="fk_event_properties_event_id_analytics_events",
            ondelete="CASCADE",
        ),
        {"postgresql_partition_by": 'RANGE ("timestamp")'},
    )

    property_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    property_name: Mapped[str] = mapped_column(String(100), nullable=False)
    property_value: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        TIMESTAMP(), nullable=False, server_default=func.current_timestamp()
    )
    # The owning event's timestamp: the partition key, and half of the composite FK.
    timestamp: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), primary_key=True, nullable=False)
