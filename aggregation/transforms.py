"""Pure Polars transforms: each takes and returns a ``LazyFrame`` and does no I/O.

Raw events arrive as read by ADBC (``uuid`` columns as 16-byte binary, ``timestamp`` as naive UTC
microseconds). The person behind an event is ``coalesce(user_id::text, external_user_id, anonymous_id)``:
a known user, else the Segment ``userId``, else the ``anonymousId``; an event with none of them counts for
no one. Distinct counts ignore NULLs (as SQL ``count(DISTINCT x)`` does).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

__all__ = [
    "ROLLUP_SCHEMA",
    "active_users",
    "active_users_from_last_seen",
    "advance_last_seen",
    "daily_rollup",
    "distinct_people",
    "hourly_rollup",
    "last_seen",
    "uuid_text",
    "with_person",
]

# MAU window: the day itself and the 29 days before it.
WINDOW_DAYS = 30
# Column order and types of both rollup outputs (``period`` is a datetime for hours, a date for days).
ROLLUP_SCHEMA = ("period", "event_name", "event_category", "events", "users", "devices", "sessions")


def uuid_text(col: str) -> pl.Expr:
    """A 16-byte binary UUID column as its canonical lower-case text (what ``uuid::text`` gives)."""
    hexed = pl.col(col).bin.encode("hex")
    return pl.concat_str(
        [
            hexed.str.slice(0, 8),
            hexed.str.slice(8, 4),
            hexed.str.slice(12, 4),
            hexed.str.slice(16, 4),
            hexed.str.slice(20, 12),
        ],
        separator="-",
    )


def with_person(events: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``person`` (see the module docstring) and drop the three identity columns it came from."""
    return events.with_columns(
        person=pl.coalesce(uuid_text("user_id"), pl.col("external_user_id"), pl.col("anonymous_id"))
    ).drop("user_id", "external_user_id", "anonymous_id")


def _rollup(events: pl.LazyFrame, period: pl.Expr) -> pl.LazyFrame:
    return (
        events.group_by(period.alias("period"), "event_name", "event_category")
        .agg(
            events=pl.len().cast(pl.Int64),
            users=pl.col("person").drop_nulls().n_unique().cast(pl.Int64),
            devices=pl.col("device_id").drop_nulls().n_unique().cast(pl.Int64),
            sessions=pl.col("session_id").drop_nulls().n_unique().cast(pl.Int64),
        )
        .select(ROLLUP_SCHEMA)
    )


def hourly_rollup(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per UTC hour (``period`` = start of the hour), event name and category. Needs ``with_person``."""
    return _rollup(events, pl.col("timestamp").dt.truncate("1h"))


def daily_rollup(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per UTC day (``period`` = the date), event name and category. Needs ``with_person``."""
    return _rollup(events, pl.col("timestamp").dt.date())


def distinct_people(events: pl.LazyFrame) -> pl.LazyFrame:
    """The distinct non-NULL people of the events, one column ``person``."""
    return events.select(pl.col("person").drop_nulls().unique())


def last_seen(people_by_day: pl.LazyFrame, day: dt.date) -> pl.LazyFrame:
    """``person, last``: each person's last active day within the 30 days ending ``day``.

    Input columns ``day, person`` (the distinct people of each day); rows outside the window are ignored.
    """
    month = day - dt.timedelta(days=WINDOW_DAYS - 1)
    return (
        people_by_day.filter(pl.col("day").is_between(month, day))
        .group_by("person")
        .agg(last=pl.col("day").max())
    )


def advance_last_seen(seen: pl.LazyFrame, people: pl.LazyFrame, day: dt.date) -> pl.LazyFrame:
    """``last_seen`` of ``day`` from that of the day before and the people active on ``day``.

    Work is proportional to the people of one month, not to 30 daily sets, so a run over consecutive days
    stays cheap.
    """
    month = day - dt.timedelta(days=WINDOW_DAYS - 1)
    today = people.select(pl.col("person"), last=pl.lit(day, dtype=pl.Date))
    return (
        pl.concat([seen.filter(pl.col("last") >= month), today])
        .group_by("person")
        .agg(last=pl.col("last").max())
    )


def active_users_from_last_seen(seen: pl.LazyFrame, day: dt.date) -> pl.LazyFrame:
    """One row ``day, dau, wau, mau`` from ``last_seen`` of ``day``.

    A person is in the MAU if seen in the 30 days, in the WAU if last seen in the 7 days ending ``day``, and
    in the DAU if last seen on ``day`` itself (the last active day is never after ``day``).
    """
    week = day - dt.timedelta(days=6)
    return seen.select(
        pl.lit(day).alias("day"),
        dau=(pl.col("last") == day).sum().cast(pl.Int64),
        wau=(pl.col("last") >= week).sum().cast(pl.Int64),
        mau=pl.len().cast(pl.Int64),
    )


def active_users(people_by_day: pl.LazyFrame, day: dt.date) -> pl.LazyFrame:
    """One row ``day, dau, wau, mau`` from the distinct people of each day (columns ``day, person``).

    WAU is the 7 days ending ``day`` and MAU the 30 days ending ``day``, both inclusive.
    """
    return active_users_from_last_seen(last_seen(people_by_day, day), day)
