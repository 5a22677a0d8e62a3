"""Tables of the reports domain."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = ["Report", "ReportSection"]


class Report(col.Timestamps, Base):
    __tablename__ = "reports"
    __table_args__ = col.indexes("reports", "report_type", "generated_date", "status")

    report_id: Mapped[uuid.UUID] = col.pk_column()
    user_id: Mapped[uuid.UUID] = col.user_fk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("businesses.business_id", ondelete="SET NULL"), index=True
    )
    report_type: Mapped[str] = mapped_column(String(50), nullable=False)
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    generated_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    period_start: Mapped[dt.date | None] = mapped_column(Date)
    period_end: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = col.status_column("active")


class ReportSection(col.Timestamps, Base):
    __tablename__ = "report_sections"
    __table_args__ = col.indexes("report_sections", "order")

    section_id: Mapped[uuid.UUID] = col.pk_column()
    report_id: Mapped[uuid.UUID] = col.ref_column("reports.report_id")
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    order: Mapped[int] = mapped_column("order", Integer, nullable=False)
