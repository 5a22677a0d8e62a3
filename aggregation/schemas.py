"""Request and response bodies of the aggregation API (msgspec)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import asyncpg

__all__ = ["ActiveUsersRow", "EventRollupRow", "ExportOut", "ExportRequest", "export_out", "utc"]


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive UTC timestamp from the database as an aware one, so JSON says ``Z``."""
    return None if value is None else value.replace(tzinfo=dt.UTC)


class EventRollupRow(msgspec.Struct):
    """One rollup row; ``period`` is an ISO date (day) or an ISO UTC timestamp of the hour's start."""

    period: str
    event_name: str
    event_category: str
    events: int
    users: int
    devices: int
    sessions: int


class ActiveUsersRow(msgspec.Struct):
    """Exact distinct people active on ``day``, in the 7 and in the 30 days ending it."""

    day: dt.date
    dau: int
    wau: int
    mau: int


class ExportRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}``, both inclusive (UTC days)."""

    date_from: str | None = msgspec.field(default=None, name="from")
    to: str | None = None


class ExportOut(msgspec.Struct):
    """An export and its state: ``pending``, ``running``, ``done``, ``failed`` or ``expired``."""

    id: uuid.UUID
    status: str
    date_from: dt.date = msgspec.field(name="from")
    to: dt.date
    requested_by: uuid.UUID | None
    rows: int | None
    bytes: int | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    download_url: str | None


def export_out(row: asyncpg.Record | dict[str, Any]) -> ExportOut:
    """The API view of an ``exports`` row."""
    done = row["status"] == "done"
    return ExportOut(
        id=row["export_id"],
        status=row["status"],
        date_from=row["date_from"],
        to=row["date_to"],
        requested_by=row["requested_by"],
        rows=row["rows"],
        bytes=row["bytes"],
        error=row["error"],
        created_at=utc(row["created_at"]),  # type: ignore[arg-type]
        started_at=utc(row["started_at"]),
        finished_at=utc(row["finished_at"]),
        download_url=f"/v1/exports/{row['export_id']}/download" if done else None,
    )
