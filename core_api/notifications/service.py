"""Notifications logic: the inbox, scheduling, and the exactly-once delivery of due schedules."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import asyncpg

from core_api.notifications import repository as repo
from core_api.notifications.errors import (
    NotificationNotFoundError,
    ScheduleNotFoundError,
    ScheduleNotPendingError,
)
from core_api.notifications.push import PushMessage, PushProvider, PushTarget
from core_api.notifications.schemas import NotificationOut, ScheduledOut
from kernel import events
from kernel.auth import AuthUser, utcnow
from kernel.db import uuid7
from kernel.owned import OwnedResource
from kernel.pagination import Page

if TYPE_CHECKING:
    pass

__all__ = [
    "DELIVERY_BATCH",
    "SCHEDULED_TYPE",
    "cancel_schedule",
    "count_unread",
    "deliver_batch",
    "inbox",
    "list_notifications",
    "list_schedules",
    "mark_all_read",
    "mark_read",
    "notify",
    "notify_many",
    "schedules",
]

_log = logging.getLogger("corp_astro.notifications")
DELIVERY_BATCH = 100
# The notification type given to delivered schedules (the seed's scheduled_notifications has no type).
SCHEDULED_TYPE = "scheduled"


inbox = OwnedResource(repo.notifications, NotificationOut, NotificationNotFoundError, "No such notification.")
schedules = OwnedResource(
    repo.schedules, ScheduledOut, ScheduleNotFoundError, "No such scheduled notification."
)


# --- Inbox ---------------------------------------------------------------------------------------


async def list_notifications(
    conn: asyncpg.Connection,
    user: AuthUser,
    *,
    user_id: uuid.UUID | None,
    unread: bool | None,
    type_: str | None,
    cursor: str | None,
    limit: int,
) -> Page[NotificationOut]:
    """Notifications ``user`` may read, newest first; ``unread`` and ``type_`` filter."""
    filters = [("read = NOT {}", unread), ("type = {}", type_)]
    return await inbox.list(conn, user, cursor=cursor, limit=limit, user_id=user_id, filters=filters)


async def count_unread(conn: asyncpg.Connection, user: AuthUser) -> int:
    """The caller's unread notifications."""
    return await repo.count_unread(conn, user.user_id)


async def mark_read(conn: asyncpg.Connection, user: AuthUser, notification_id: uuid.UUID) -> NotificationOut:
    """Mark one of the caller's notifications read (idempotent)."""
    return inbox.found(await repo.mark_read(conn, notification_id, user.user_id))


async def mark_all_read(conn: asyncpg.Connection, user: AuthUser) -> int:
    """Mark all of the caller's notifications read; how many changed."""
    return await repo.mark_all_read(conn, user.user_id)


# --- Scheduled notifications ---------------------------------------------------------------------


async def list_schedules(
    conn: asyncpg.Connection,
    user: AuthUser,
    *,
    user_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[ScheduledOut]:
    """Scheduled notifications ``user`` may read, soonest first, optionally of one ``status``."""
    filters = [("status = {}", status)]
    return await schedules.list(conn, user, cursor=cursor, limit=limit, user_id=user_id, filters=filters)


async def cancel_schedule(conn: asyncpg.Connection, user: AuthUser, schedule_id: uuid.UUID) -> ScheduledOut:
    """Cancel one of the caller's pending scheduled notifications (409 once sent or cancelled)."""
    row = await repo.cancel_schedule(conn, schedule_id, user.user_id)
    if row is not None:
        return schedules.to_out(row)
    existing = await repo.schedules.get(conn, schedule_id, user.user_id)
    if existing is None:
        raise schedules.not_found()
    raise ScheduleNotPendingError(f"The scheduled notification is already {existing['status']}.")


# --- Delivery ------------------------------------------------------------------------------------


async def notify(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, title: str, body: str, type: str, data: dict[str, Any]
) -> uuid.UUID:
    """Put one notification in a user's inbox now, in the caller's transaction (other domains' entry)."""
    notification_id = uuid7()
    await repo.insert_notifications(
        conn, [(notification_id, user_id, title, body, data, type, "sent", utcnow())]
    )
    return notification_id


async def notify_many(conn: asyncpg.Connection, items: list[tuple[Any, ...]]) -> None:
    """``notify`` for several notifications at once, in one round trip (the workflow runner's batch):
    ``items`` are ``(notification_id, user_id, title, body, type, data)``."""
    now = utcnow()
    await repo.insert_notifications(
        conn,
        [
            (nid, user_id, title, body, data, type_, "sent", now)
            for nid, user_id, title, body, type_, data in items
        ],
    )


async def deliver_batch(conn: asyncpg.Connection, provider: PushProvider, limit: int = DELIVERY_BATCH) -> int:
    """Deliver up to ``limit`` due schedules inside the caller's transaction; how many were delivered.

    The rows are claimed with ``FOR UPDATE SKIP LOCKED``, so concurrent runners (in this process or
    any other) never take the same row, and the claim, the new notifications and the status change
    commit together. The push is handed over under the row lock: if the transaction then fails to
    commit, the rows stay pending and are delivered again later (the push may repeat; the stored
    notification does not).
    """
    rows = await repo.claim_due(conn, utcnow(), limit)
    if not rows:
        return 0
    targets: dict[uuid.UUID, list[PushTarget]] = defaultdict(list)
    for d in await repo.active_devices(conn, list({r["user_id"] for r in rows})):
        targets[d["user_id"]].append(PushTarget(d["device_id"], d["platform"], d["device_token"]))
    now = utcnow()
    notifications: list[tuple[Any, ...]] = []
    for row in rows:
        notification_id = uuid7()
        data = {**row["data"], "schedule_id": str(row["schedule_id"])}
        message = PushMessage(
            notification_id=notification_id,
            schedule_id=row["schedule_id"],
            user_id=row["user_id"],
            title=row["title"],
            body=row["body"],
            data=data,
            targets=tuple(targets.get(row["user_id"], ())),
        )
        try:
            pushed = await provider.send(message)
        except Exception:  # one provider failure must not block the rest of the batch
            _log.exception("push provider failed", extra={"notification_id": str(notification_id)})
            pushed = False
        notifications.append(
            (
                notification_id,
                row["user_id"],
                row["title"],
                row["body"],
                data,
                SCHEDULED_TYPE,
                "sent" if pushed else "failed",
                now,
            )
        )
    await repo.insert_notifications(conn, notifications)
    delivered = [n for n in notifications if n[6] == "sent"]
    await events.emit_many(
        conn, [("notification.delivered", {"notification_id": n[0], "user_id": n[1]}) for n in delivered]
    )
    await repo.mark_schedules_sent(conn, [r["schedule_id"] for r in rows])
    return len(rows)
