"""Request and response bodies of the reports domain (the seed's column names)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from kernel.resources import NO_NUL, Name, Name50, Text

__all__ = [
    "MAX_SECTIONS",
    "ReportCreate",
    "ReportFilters",
    "ReportOut",
    "ReportStatus",
    "ReportSummary",
    "ReportUpdate",
    "SectionIn",
    "SectionOut",
]

ReportStatus = Literal["draft", "active", "archived"]
MAX_SECTIONS = 100
SectionContent = Annotated[str, Meta(max_length=50_000, pattern=NO_NUL)]
# INTEGER column: a larger number would be refused by PostgreSQL.
Order = Annotated[int, Meta(ge=0, le=2_147_483_647)]


class SectionIn(msgspec.Struct, forbid_unknown_fields=True):
    """A section in a report body; ``order`` is its display position."""

    title: Name
    content: SectionContent
    order: Order


Sections = Annotated[list[SectionIn], Meta(max_length=MAX_SECTIONS)]


def _check_period(start: dt.date | UnsetType | None, end: dt.date | UnsetType | None) -> None:
    if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
        raise ValueError("`period_end` must not be before `period_start`")


class ReportCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/reports``: a report, optionally with its sections; ``generated_date`` defaults to today."""

    report_type: Name50
    title: Name
    summary: Text | None = None
    generated_date: dt.date | UnsetType = UNSET
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    status: ReportStatus = "active"
    business_id: uuid.UUID | None = None
    sections: Sections = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _check_period(self.period_start, self.period_end)


class ReportUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PATCH /v1/reports/{report_id}``: omitted fields are unchanged; ``sections`` replaces them all."""

    report_type: Name50 | UnsetType = UNSET
    title: Name | UnsetType = UNSET
    summary: Text | UnsetType | None = UNSET
    generated_date: dt.date | UnsetType = UNSET
    period_start: dt.date | UnsetType | None = UNSET
    period_end: dt.date | UnsetType | None = UNSET
    status: ReportStatus | UnsetType = UNSET
    business_id: uuid.UUID | UnsetType | None = UNSET
    sections: Sections | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_period(self.period_start, self.period_end)


class SectionOut(msgspec.Struct):
    """A ``report_sections`` row."""

    section_id: uuid.UUID
    report_id: uuid.UUID
    title: str
    content: str
    order: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ReportSummary(msgspec.Struct):
    """A ``reports`` row (list items carry no sections)."""

    report_id: uuid.UUID
    user_id: uuid.UUID
    business_id: uuid.UUID | None
    report_type: str
    title: str
    summary: str | None
    generated_date: dt.date
    period_start: dt.date | None
    period_end: dt.date | None
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime


class ReportOut(ReportSummary):
    """A report with its sections in display order."""

    sections: list[SectionOut] = []


class ReportFilters(msgspec.Struct, frozen=True):
    """The filters of ``GET /v1/reports`` (None: not filtered)."""

    report_type: str | None = None
    status: ReportStatus | None = None
    generated_from: dt.date | None = None
    generated_to: dt.date | None = None
