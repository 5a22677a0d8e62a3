"""Upkeep's window and the names it formats, for any year (glibc's %Y does not pad years < 1000)."""

from __future__ import annotations

import datetime as dt

from retention.repository import partition_name
from retention.schemas import RetentionPolicy, month_label, upkeep_window


def test_labels_and_names_pad_the_year() -> None:
    assert month_label(dt.date(999, 6, 1)) == "0999-06"
    assert month_label(dt.date(2026, 11, 1)) == "2026-11"
    assert partition_name("analytics_events", dt.date(999, 6, 1)) == "analytics_events_p0999_06"
    assert partition_name("event_properties", dt.date(2031, 1, 1)) == "event_properties_p2031_01"


def test_upkeep_window_is_the_retained_months_through_the_premade_ones() -> None:
    assert upkeep_window(dt.date(2026, 11, 30), RetentionPolicy()) == (
        dt.date(2024, 11, 1),
        dt.date(2027, 2, 1),
    )
    policy = RetentionPolicy(raw_retention_months=12, premake_months=0)
    assert upkeep_window(dt.date(2026, 1, 15), policy) == (dt.date(2025, 1, 1), dt.date(2026, 1, 1))


def test_upkeep_window_is_clamped_to_four_digit_years() -> None:
    huge = RetentionPolicy(raw_retention_months=10**7, premake_months=10**7)
    assert upkeep_window(dt.date(2026, 11, 30), huge) == (dt.date(1000, 1, 1), dt.date(9999, 11, 1))
