"""Tables of the notifications domain.

Column names, types, nullability and defaults follow ``docs/seed/database-schema.md``; additions
and deviations are listed in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from kernel.columns import EMPTY_JSON
from kernel.columns import created_column as _created
from kernel.columns import pk_column as _pk
from kernel.columns import user_fk as _user_fk
from kernel.db import Base

__all__ = ["Notification", "ScheduledNotification"]


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_type", "type"),
        Index("ix_notifications_status", "status"),
        Index("ix_notifications_read", "read"),
        Index("ix_notifications_sent_at", "sent_at"),
        # Addition (core API): a user's notifications newest first, the keyset order of the list.
        Index("ix_notifications_user_id_created_at", "user_id", "created_at", "notification_id"),
    )

    notification_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    type: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    read: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    sent_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
    read_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class ScheduledNotification(Base):
    __tablename__ = "scheduled_notifications"
    __table_args__ = (
        Index("ix_scheduled_notifications_scheduled_time", "scheduled_time"),
        Index("ix_scheduled_notifications_status", "status"),
        # Addition (core API): the delivery job's scan for due rows touches only pending ones.
        Index(
            "ix_scheduled_notifications_due",
            "scheduled_time",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    schedule_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    scheduled_time: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()
