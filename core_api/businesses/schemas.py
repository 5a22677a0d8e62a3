"""Request and response bodies of the businesses domain (the seed's column names)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from msgspec import UNSET, UnsetType

from kernel.resources import (
    JsonObject,
    Name,
    Name50,
    Str50,
    Str100,
    Str255,
    Text,
    check_json_object,
    check_url,
)

__all__ = ["AnalysisCreate", "AnalysisOut", "BusinessCreate", "BusinessOut", "BusinessUpdate"]

MAX_CHART_BYTES = 48 * 1024


def _check_business(
    registration_time: dt.time | UnsetType | None,
    logo_url: str | UnsetType | None,
    website: str | UnsetType | None,
) -> None:
    if isinstance(registration_time, dt.time) and registration_time.tzinfo is not None:
        raise ValueError("`registration_time` is a local time of day, without a UTC offset")
    for field, value in (("logo_url", logo_url), ("website", website)):
        if isinstance(value, str):
            check_url(value, field)


class BusinessCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/businesses``."""

    name: Name
    registration_date: dt.date | None = None
    registration_time: dt.time | None = None
    registration_place: Str255 | None = None
    industry: Str100 | None = None
    size: Str50 | None = None
    logo_url: Str255 | None = None
    website: Str255 | None = None
    description: Text | None = None

    def __post_init__(self) -> None:
        _check_business(self.registration_time, self.logo_url, self.website)


class BusinessUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PATCH /v1/businesses/{business_id}``: omitted fields are unchanged."""

    name: Name | UnsetType = UNSET
    registration_date: dt.date | UnsetType | None = UNSET
    registration_time: dt.time | UnsetType | None = UNSET
    registration_place: Str255 | UnsetType | None = UNSET
    industry: Str100 | UnsetType | None = UNSET
    size: Str50 | UnsetType | None = UNSET
    logo_url: Str255 | UnsetType | None = UNSET
    website: Str255 | UnsetType | None = UNSET
    description: Text | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        _check_business(self.registration_time, self.logo_url, self.website)


class BusinessOut(msgspec.Struct):
    """A ``businesses`` row."""

    business_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    registration_date: dt.date | None
    registration_time: dt.time | None
    registration_place: str | None
    industry: str | None
    size: str | None
    logo_url: str | None
    website: str | None
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AnalysisCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/businesses/{business_id}/analyses``."""

    analysis_type: Name50
    chart_data: JsonObject | None = None
    summary: Text | None = None
    detailed_analysis: Text | None = None
    recommendations: Text | None = None

    def __post_init__(self) -> None:
        if self.chart_data is not None:
            check_json_object(self.chart_data, "chart_data", MAX_CHART_BYTES)


class AnalysisOut(msgspec.Struct):
    """A ``business_analyses`` row."""

    analysis_id: uuid.UUID
    business_id: uuid.UUID
    analysis_type: str
    chart_data: JsonObject | None
    summary: str | None
    detailed_analysis: str | None
    recommendations: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
