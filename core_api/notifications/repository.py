"""SQL of the notifications domain, including the delivery job's claim of due rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from core_api.notifications.models import Notification, ScheduledNotification
from kernel.owned import OwnedTable
from kernel.resources import fetch_all, row_count

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "active_devices",
    "cancel_schedule",
    "claim_due",
    "count_unread",
    "delete_user_schedules",
    "insert_notifications",
    "mark_all_read",
    "mark_read",
    "mark_schedules_sent",
    "notifications",
    "schedules",
]

notifications = OwnedTable(Notification.__table__)
# Scheduled notifications are listed soonest first.
schedules = OwnedTable(ScheduledNotification.__table__, order="scheduled_time", descending=False)
_NOW = "(now() AT TIME ZONE 'UTC')"
Row = Any  # asyncpg.Record


# --- Notifications -------------------------------------------------------------------------------


async def count_unread(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """How many of the user's notifications are unread."""
    value: int = await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT read", user_id
    )
    return value


async def mark_read(conn: asyncpg.Connection, notification_id: uuid.UUID, user_id: uuid.UUID) -> Row | None:
    """Mark the user's notification read; ``read_at`` keeps the first time it was read."""
    return await conn.fetchrow(
        f"""UPDATE notifications SET read = true, read_at = COALESCE(read_at, {_NOW}),
               updated_at = CASE WHEN read THEN updated_at ELSE {_NOW} END
            WHERE notification_id = $1 AND user_id = $2 RETURNING {notifications.columns}""",
        notification_id,
        user_id,
    )


async def mark_all_read(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Mark every unread notification of the user read; how many changed."""
    status = await conn.execute(
        f"""UPDATE notifications SET read = true, read_at = {_NOW}, updated_at = {_NOW}
            WHERE user_id = $1 AND NOT read""",
        user_id,
    )
    return row_count(status)


async def insert_notifications(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert delivered notifications: (notification_id, user_id, title, body, data, type, status, sent_at)."""
    await conn.executemany(
        """INSERT INTO notifications (notification_id, user_id, title, body, data, type, status, sent_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        rows,
    )


# --- Scheduled notifications ---------------------------------------------------------------------


async def cancel_schedule(conn: asyncpg.Connection, schedule_id: uuid.UUID, user_id: uuid.UUID) -> Row | None:
    """Cancel the user's pending scheduled notification.

    If the delivery job holds the row, this waits for it and then sees ``status = 'sent'``: a
    notification is never both delivered and cancelled.
    """
    return await conn.fetchrow(
        f"""UPDATE scheduled_notifications SET status = 'cancelled', updated_at = {_NOW}
            WHERE schedule_id = $1 AND user_id = $2 AND status = 'pending' RETURNING {schedules.columns}""",
        schedule_id,
        user_id,
    )


async def claim_due(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[Row]:
    """Lock up to ``limit`` due pending rows that no other runner holds (``FOR UPDATE SKIP LOCKED``).

    Another runner's transaction skips these rows instead of waiting, and when this transaction
    commits they are no longer pending: each row is delivered by exactly one runner.
    """
    return await fetch_all(
        conn,
        f"""SELECT {schedules.columns} FROM scheduled_notifications
            WHERE status = 'pending' AND scheduled_time <= $1
            ORDER BY scheduled_time LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )


async def mark_schedules_sent(conn: asyncpg.Connection, schedule_ids: list[uuid.UUID]) -> None:
    """Mark claimed rows delivered."""
    await conn.execute(
        f"UPDATE scheduled_notifications SET status = 'sent', updated_at = {_NOW} WHERE schedule_id = ANY($1)",
        schedule_ids,
    )


async def active_devices(conn: asyncpg.Connection, user_ids: list[uuid.UUID]) -> list[Row]:
    """Active push devices of the given users."""
    return await fetch_all(
        conn,
        """SELECT user_id, device_id, platform, device_token FROM user_devices
           WHERE user_id = ANY($1) AND active ORDER BY user_id, created_at""",
        user_ids,
    )


async def delete_user_schedules(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Delete a user's scheduled notifications; the number deleted."""
    status: str = await conn.execute("DELETE FROM scheduled_notifications WHERE user_id = $1", user_id)
    return row_count(status)
