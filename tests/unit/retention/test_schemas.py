"""Calendar arithmetic of the retention windows."""

from __future__ import annotations

import datetime as dt

import pytest

from retention.schemas import Action, add_months, month_start
from retention.service import months_ago


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 11, 26), 1, dt.date(2026, 12, 1)),
        (dt.date(2026, 12, 31), 1, dt.date(2027, 1, 1)),
        (dt.date(2026, 1, 15), -1, dt.date(2025, 12, 1)),
        (dt.date(2026, 11, 1), -24, dt.date(2024, 11, 1)),
        (dt.date(2026, 3, 3), 0, dt.date(2026, 3, 1)),
    ],
)
def test_add_months(day: dt.date, months: int, expected: dt.date) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("now", "months", "expected"),
    [
        (dt.date(2026, 11, 26), 24, dt.date(2024, 11, 26)),
        (dt.date(2026, 11, 26), 6, dt.date(2026, 5, 26)),
        (dt.date(2026, 3, 31), 1, dt.date(2026, 2, 28)),  # clamped to the shorter month
        (dt.date(2024, 2, 29), 12, dt.date(2023, 2, 28)),
        (dt.date(2026, 1, 1), 12, dt.date(2025, 1, 1)),
    ],
)
def test_months_ago(now: dt.date, months: int, expected: dt.date) -> None:
    assert months_ago(now, months) == expected


def test_month_start_and_action_line() -> None:
    assert month_start(dt.date(2026, 2, 28)) == dt.date(2026, 2, 1)
    line = Action("purge", "audit_log", 1234, "created_at before 2026-05-26", "done").line()
    assert "purge" in line
    assert "1,234 rows" in line
