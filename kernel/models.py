"""Tables the kernel owns: the audit log every domain appends to through ``kernel.audit``, and the event
outbox every domain emits to through ``kernel.events``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.dialects.postgresql import INET, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = ["AuditLog", "EventKey", "EventOutbox"]


class AuditLog(Base):
    """Security-relevant actions. Retained 6 months, like the seed's logs and audit trails."""

    __tablename__ = "audit_log"
    __table_args__ = col.indexes("audit_log", "created_at", "actor_user_id", "action")

    audit_id: Mapped[uuid.UUID] = col.pk_column()
    # No FK: the trail must outlive the accounts it mentions (an erasure is itself audited).
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subject_id: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(50), nullable=False)
    ip_address: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict[str, Any]] = col.json_column()
    created_at: Mapped[dt.datetime] = col.created_column()


class EventOutbox(Base):
    """Events recorded in the transaction of the change that caused them (``kernel.events.emit``), until
    the webhook dispatcher takes them (``kernel.events.take``): a transactional outbox."""

    __tablename__ = "event_outbox"

    event_id: Mapped[uuid.UUID] = col.pk_column()
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    # The exact JSON body receivers get: {"type", "timestamp", "data"}.
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = col.created_column()


class EventKey(Base):
    """Keys of events emitted at most once (``kernel.events.emit_once``): one small row per key, kept."""

    __tablename__ = "event_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[dt.datetime] = col.created_column()
