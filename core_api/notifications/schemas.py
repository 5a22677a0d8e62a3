"""Request and response bodies of the notifications domain (the seed's column names)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from kernel.auth import utcnow
from kernel.resources import NO_NUL, JsonObject, Name, check_json_object, to_utc_naive

__all__ = [
    "MAX_SCHEDULE_AHEAD",
    "NotificationOut",
    "ReadAllResult",
    "ScheduleStatus",
    "ScheduledCreate",
    "ScheduledOut",
    "UnreadCount",
]

ScheduleStatus = Literal["pending", "sent", "cancelled", "failed"]
MAX_SCHEDULE_AHEAD = dt.timedelta(days=366 * 2)
Body = Annotated[str, Meta(min_length=1, max_length=4_000, pattern=NO_NUL)]


class NotificationOut(msgspec.Struct):
    """A ``notifications`` row."""

    notification_id: uuid.UUID
    user_id: uuid.UUID
    title: str
    body: str
    data: JsonObject
    type: str
    status: str
    read: bool
    sent_at: dt.datetime | None
    read_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class UnreadCount(msgspec.Struct):
    """``GET /v1/notifications/unread-count``."""

    unread: int


class ReadAllResult(msgspec.Struct):
    """``POST /v1/notifications/read-all``: how many were marked read."""

    updated: int


class ScheduledCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/scheduled-notifications``: a notification for the caller at a future time.

    ``scheduled_time`` is ISO 8601; with an offset it is converted to UTC, without one it is UTC.
    """

    title: Name
    body: Body
    scheduled_time: dt.datetime
    data: JsonObject = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_json_object(self.data, "data")
        self.scheduled_time = to_utc_naive(self.scheduled_time)
        now = utcnow()
        if self.scheduled_time <= now:
            raise ValueError("`scheduled_time` must be in the future")
        if self.scheduled_time > now + MAX_SCHEDULE_AHEAD:
            raise ValueError("`scheduled_time` must be within two years")


class ScheduledOut(msgspec.Struct):
    """A ``scheduled_notifications`` row."""

    schedule_id: uuid.UUID
    user_id: uuid.UUID
    title: str
    body: str
    data: JsonObject
    scheduled_time: dt.datetime
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
