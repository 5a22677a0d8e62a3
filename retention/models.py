"""The retention ledger: one row per action a retention run took (or skipped, with its reason)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = ["RetentionAction"]


class RetentionAction(Base):
    """What a retention or partition-upkeep run did: created, drained, finalised, dropped, purged, skipped."""

    __tablename__ = "retention_actions"
    __table_args__ = col.indexes("retention_actions", "run_id", "started_at")

    action_id: Mapped[uuid.UUID] = col.pk_column()
    run_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    action: Mapped[str] = mapped_column(String(30), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = col.status_column()
    rows: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    policy_now: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    started_at: Mapped[dt.datetime] = col.created_column()
    finished_at: Mapped[dt.datetime | None] = col.time_column()
