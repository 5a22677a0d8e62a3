"""Tables of the reports domain.

Column names, types, nullability and defaults follow ``docs/seed/database-schema.md``; additions
and deviations are listed in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel.columns import created_column as _created
from kernel.columns import pk_column as _pk
from kernel.columns import user_fk as _user_fk
from kernel.db import Base

__all__ = ["Report", "ReportSection"]


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_report_type", "report_type"),
        Index("ix_reports_generated_date", "generated_date"),
        Index("ix_reports_status", "status"),
    )

    report_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("businesses.business_id", ondelete="SET NULL"), index=True
    )
    report_type: Mapped[str] = mapped_column(String(50), nullable=False)
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    generated_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    period_start: Mapped[dt.date | None] = mapped_column(Date)
    period_end: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class ReportSection(Base):
    __tablename__ = "report_sections"
    __table_args__ = (Index("ix_report_sections_order", "order"),)

    section_id: Mapped[uuid.UUID] = _pk()
    report_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("reports.report_id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    order: Mapped[int] = mapped_column("order", Integer, nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()
