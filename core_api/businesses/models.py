"""Tables of the businesses domain.

Column names, types, nullability and defaults follow ``docs/seed/database-schema.md``; additions
and deviations are listed in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    Time,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel.columns import created_column as _created
from kernel.columns import pk_column as _pk
from kernel.columns import user_fk as _user_fk
from kernel.db import Base

__all__ = ["Business", "BusinessAnalysis"]


class Business(Base):
    __tablename__ = "businesses"
    __table_args__ = (
        Index("ix_businesses_name", "name"),
        Index("ix_businesses_industry", "industry"),
    )

    business_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    registration_date: Mapped[dt.date | None] = mapped_column(Date)
    registration_time: Mapped[dt.time | None] = mapped_column(Time)
    registration_place: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[str | None] = mapped_column(String(50))
    logo_url: Mapped[str | None] = mapped_column(String(255))
    website: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class BusinessAnalysis(Base):
    __tablename__ = "business_analyses"
    __table_args__ = (Index("ix_business_analyses_analysis_type", "analysis_type"),)

    analysis_id: Mapped[uuid.UUID] = _pk()
    business_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("businesses.business_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    analysis_type: Mapped[str] = mapped_column(String(50), nullable=False)
    chart_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    summary: Mapped[str | None] = mapped_column(Text)
    detailed_analysis: Mapped[str | None] = mapped_column(Text)
    recommendations: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()
