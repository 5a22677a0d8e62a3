"""Tables the kernel owns: the audit log every domain appends to through ``kernel.audit``.

Column names, types, nullability and defaults follow ``docs/seed/database-schema.md``; additions
and deviations are listed in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Index,
    String,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel.columns import EMPTY_JSON
from kernel.columns import created_column as _created
from kernel.columns import pk_column as _pk
from kernel.db import Base

__all__ = ["AuditLog"]


class AuditLog(Base):
    """Security-relevant actions. Retained 6 months, like the seed's logs and audit trails."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_actor_user_id", "actor_user_id"),
        Index("ix_audit_log_action", "action"),
    )

    audit_id: Mapped[uuid.UUID] = _pk()
    # No FK: the trail must outlive the accounts it mentions (an erasure is itself audited).
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subject_id: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(50), nullable=False)
    ip_address: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    created_at: Mapped[dt.datetime] = _created()
