"""The keyset cursor: opaque, round-trips its key exactly, and rejects anything else with a 400."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kernel.errors import ValidationError
from kernel.pagination import InvalidCursorError, decode_cursor, encode_cursor, make_page

Key = tuple[dt.datetime, uuid.UUID]


def test_cursor_round_trips_microseconds_and_ids() -> None:
    key = (dt.datetime(2026, 11, 26, 12, 0, 0, 123456), uuid.uuid4())
    cursor = encode_cursor(*key)
    assert cursor.replace("-", "").replace("_", "").isalnum()  # URL-safe, no padding
    assert decode_cursor(cursor, Key) == key


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None, Key) is None
    assert decode_cursor("", Key) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "bm90IGpzb24",  # "not json"
        encode_cursor("x", 1),  # wrong types
        encode_cursor(dt.date(2026, 1, 1), uuid.uuid4()),  # another list's key shape
        encode_cursor(dt.datetime(2026, 1, 1)),  # too short
        "A" * 10,
    ],
)
def test_foreign_or_corrupt_cursors_are_rejected(cursor: str) -> None:
    with pytest.raises(InvalidCursorError) as info:
        decode_cursor(cursor, Key)
    # A query value that does not fit: 422 validation_error naming the field (docs/errors.md).
    assert isinstance(info.value, ValidationError)
    assert info.value.details == [
        {"field": "query.cursor", "message": "is not a cursor of this list; use next_cursor as given"}
    ]


def test_make_page_sets_the_cursor_only_when_more_rows_exist() -> None:
    rows = list(range(6))
    page = make_page(rows, 5, lambda r: (r,))
    assert page.items == [0, 1, 2, 3, 4]
    assert decode_cursor(page.next_cursor, tuple[int]) == (4,)
    last = make_page(rows[:3], 5, lambda r: (r,))
    assert last.items == [0, 1, 2]
    assert last.next_cursor is None
    assert make_page([], 5, lambda r: (r,)).next_cursor is None
