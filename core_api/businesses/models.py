"""Tables of the businesses domain."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Date, String, Text, Time
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = ["Business", "BusinessAnalysis"]


class Business(col.Timestamps, Base):
    __tablename__ = "businesses"
    __table_args__ = col.indexes("businesses", "name", "industry")

    business_id: Mapped[uuid.UUID] = col.pk_column()
    user_id: Mapped[uuid.UUID] = col.user_fk()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    registration_date: Mapped[dt.date | None] = mapped_column(Date)
    registration_time: Mapped[dt.time | None] = mapped_column(Time)
    registration_place: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[str | None] = mapped_column(String(50))
    logo_url: Mapped[str | None] = mapped_column(String(255))
    website: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)


class BusinessAnalysis(col.Timestamps, Base):
    __tablename__ = "business_analyses"
    __table_args__ = col.indexes("business_analyses", "analysis_type")

    analysis_id: Mapped[uuid.UUID] = col.pk_column()
    business_id: Mapped[uuid.UUID] = col.ref_column("businesses.business_id")
    analysis_type: Mapped[str] = mapped_column(String(50), nullable=False)
    chart_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    summary: Mapped[str | None] = mapped_column(Text)
    detailed_analysis: Mapped[str | None] = mapped_column(Text)
    recommendations: Mapped[str | None] = mapped_column(Text)
