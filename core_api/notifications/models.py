"""Tables of the notifications domain."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, Index, String, Text, text
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = ["Notification", "ScheduledNotification"]


class Notification(col.Timestamps, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        *col.indexes("notifications", "type", "status", "read", "sent_at"),
        # Addition (core API): a user's notifications newest first, the keyset order of the list.
        Index("ix_notifications_user_id_created_at", "user_id", "created_at", "notification_id"),
    )

    notification_id: Mapped[uuid.UUID] = col.pk_column()
    user_id: Mapped[uuid.UUID] = col.user_fk()
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = col.json_column()
    type: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = col.status_column("pending")
    read: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    sent_at: Mapped[dt.datetime | None] = col.time_column()
    read_at: Mapped[dt.datetime | None] = col.time_column()


class ScheduledNotification(col.Timestamps, Base):
    __tablename__ = "scheduled_notifications"
    __table_args__ = (
        *col.indexes("scheduled_notifications", "scheduled_time", "status"),
        # Addition (core API): the delivery job's scan for due rows touches only pending ones.
        Index(
            "ix_scheduled_notifications_due",
            "scheduled_time",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    schedule_id: Mapped[uuid.UUID] = col.pk_column()
    user_id: Mapped[uuid.UUID] = col.user_fk()
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = col.json_column()
    scheduled_time: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    status: Mapped[str] = col.status_column("pending")
