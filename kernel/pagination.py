"""Keyset (cursor) pagination shared by every list endpoint.

A page is ``{"items": [...], "next_cursor": "..." | null}``. The cursor is opaque to clients: the
URL-safe base64 of a JSON array holding the sort key of the last item returned. Repositories fetch
``limit + 1`` rows ordered by that key and ask for the rows strictly after it, so a page costs an index
range scan however deep the client has paged, and concurrent inserts never shift or repeat items.

A cursor carries no authority: every query is still scoped to its owner, so a forged cursor can only
move within the caller's own rows. A cursor that does not decode to the expected key types is a 422
(``query.cursor``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

from kernel.errors import ValidationError, problem

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "CursorParam",
    "InvalidCursorError",
    "LimitParam",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "make_page",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Generous for any sort key (a timestamp and a UUID encode to ~90 characters), small enough to reject junk.
_MAX_CURSOR_LENGTH = 512

T = TypeVar("T")

LimitParam = Annotated[
    int,
    QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, 1..{MAX_PAGE_SIZE}."),
]
CursorParam = Annotated[
    str | None,
    QueryParameter(
        max_length=_MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="The `next_cursor` of the previous page.",
    ),
]


class InvalidCursorError(ValidationError):
    """The cursor was not produced by this list (or was altered): 422 naming ``query.cursor``."""

    def __init__(self) -> None:
        super().__init__(
            "The cursor is not valid for this list.",
            details=[problem("query.cursor", "is not a cursor of this list; use next_cursor as given")],
        )


class Page(msgspec.Struct, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(*key: Any) -> str:
    """The opaque cursor for a sort key (values msgspec can encode: UUIDs, dates, numbers, strings)."""
    return base64.urlsafe_b64encode(msgspec.json.encode(list(key))).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str | None, key_type: Any) -> Any:
    """The sort key in ``cursor`` as ``key_type`` (a tuple type), or None for the first page.

    Raises ``InvalidCursorError`` (422) for anything that is not a cursor of this shape.
    """
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=key_type, strict=True)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursorError() from exc


def make_page(rows: Sequence[T], limit: int, key: Callable[[T], Sequence[Any]]) -> Page[T]:
    """Build a page from up to ``limit + 1`` rows fetched in sort order."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(*key(items[-1])) if len(rows) > limit and items else None
    return Page(items=items, next_cursor=next_cursor)
