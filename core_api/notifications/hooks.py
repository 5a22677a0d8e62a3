"""What notifications does when another domain's event concerns its tables."""

from __future__ import annotations

import uuid

import asyncpg

from core_api.notifications import repository

__all__ = ["on_user_erased"]


async def on_user_erased(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    """Delete the erased user's scheduled notifications first: a delivery run holding one of them then
    finishes (its row lock is waited for) before the user row is locked, which would otherwise deadlock
    with the delivery's foreign-key check. The inbox goes with the user (ON DELETE CASCADE)."""
    return {"scheduled_notifications": await repository.delete_user_schedules(conn, user_id)}
