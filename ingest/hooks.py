"""What ingest does when another domain's event concerns its tables."""

from __future__ import annotations

import uuid

import asyncpg

from ingest import repository

__all__ = ["on_user_erased"]


async def on_user_erased(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    """Keep the erased user's events, unlinked (``user_id`` NULL), in the caller's transaction."""
    return {"events_unlinked": await repository.unlink_user(conn, user_id)}
