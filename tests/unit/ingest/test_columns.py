"""One schema description: the COPY columns and timestamps the mapping writes follow ``ingest.models``."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.mapping import EVENT_COLUMNS, PROPERTY_COLUMNS, USER_ID_SLOT, parse_timestamp
from ingest.models import AnalyticsEvent, EventProperty


def test_copy_columns_are_the_models_columns_but_created_at() -> None:
    events = [c.name for c in AnalyticsEvent.__table__.columns if c.name != "created_at"]
    properties = [c.name for c in EventProperty.__table__.columns if c.name != "created_at"]
    assert list(EVENT_COLUMNS) == events
    assert list(PROPERTY_COLUMNS) == properties
    assert EVENT_COLUMNS[USER_ID_SLOT] == "user_id"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T10:00:00.123Z",
        "2026-11-20T10:00:00+05:30",
        "2026-11-20T23:30:00-11:00",
        "2026-11-20T10:00:00.5+01:00:30.25",
        "2026-03-29T01:30:00+00:00",
        "1000-01-01T00:30:00+01:00",
        "2026-11-20T10:00:00",
    ],
)
def test_parse_timestamp_is_naive_utc(text: str) -> None:
    parsed = dt.datetime.fromisoformat(text)
    offset = parsed.utcoffset()
    expected = parsed if offset is None else (parsed - offset).replace(tzinfo=None)
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text).tzinfo is None


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_timestamp_out_of_range_raises_overflow(text: str) -> None:
    with pytest.raises(OverflowError):
        parse_timestamp(text)
