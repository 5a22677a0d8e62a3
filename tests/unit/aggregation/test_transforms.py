"""The pure Polars transforms, against Python's own idea of the same thing."""

from __future__ import annotations

import datetime as dt
import uuid

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from aggregation import transforms


@given(st.lists(st.uuids(), max_size=20))
def test_uuid_text_is_canonical(ids: list[uuid.UUID]) -> None:
    frame = pl.DataFrame({"u": [u.bytes for u in ids]}, schema={"u": pl.Binary})
    assert frame.select(transforms.uuid_text("u"))["u"].to_list() == [str(u) for u in ids]


def test_person_prefers_user_then_external_then_anonymous() -> None:
    u = uuid.uuid4()
    frame = pl.DataFrame(
        {
            "user_id": [u.bytes, None, None, None],
            "external_user_id": ["ext", "ext", None, None],
            "anonymous_id": ["anon", "anon", "anon", None],
        },
        schema={"user_id": pl.Binary, "external_user_id": pl.String, "anonymous_id": pl.String},
    )
    assert transforms.with_person(frame.lazy()).collect()["person"].to_list() == [str(u), "ext", "anon", None]


def test_active_users_windows() -> None:
    day = dt.date(2026, 3, 31)
    rows = [
        (day, "a"),
        (day, "b"),
        (day - dt.timedelta(days=6), "c"),  # inside the week
        (day - dt.timedelta(days=7), "d"),  # outside the week, inside the month
        (day - dt.timedelta(days=29), "a"),  # a again: counted once
        (day - dt.timedelta(days=30), "e"),  # outside the month
    ]
    frame = pl.DataFrame(rows, schema={"day": pl.Date, "person": pl.String}, orient="row")
    assert transforms.active_users(frame.lazy(), day).collect().row(0) == (day, 2, 3, 4)


def test_rollup_distinct_counts_ignore_nulls() -> None:
    t = dt.datetime(2026, 3, 10, 9, 15)
    frame = pl.DataFrame(
        {
            "timestamp": [t, t, t + dt.timedelta(hours=1)],
            "event_name": ["open"] * 3,
            "event_category": ["app"] * 3,
            "person": ["p1", None, "p1"],
            "device_id": [None, None, "d"],
            "session_id": ["s", "s", None],
        }
    )
    hourly = transforms.hourly_rollup(frame.lazy()).sort("period").collect().rows()
    assert hourly == [
        (dt.datetime(2026, 3, 10, 9), "open", "app", 2, 1, 0, 1),
        (dt.datetime(2026, 3, 10, 10), "open", "app", 1, 1, 1, 0),
    ]
    assert transforms.daily_rollup(frame.lazy()).collect().rows() == [
        (dt.date(2026, 3, 10), "open", "app", 3, 1, 1, 1)
    ]
