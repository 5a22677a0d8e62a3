"""SQL of the ``webhooks`` table (subscriptions). Never commits: callers own the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from integrations.models import Webhook
from kernel.resources import columns, fetch_all, set_clause

if TYPE_CHECKING:
    import asyncpg

__all__ = ["delete", "get", "insert", "page", "rotate", "update"]

Row = Any  # asyncpg.Record
_NOW = "(now() AT TIME ZONE 'UTC')"
COLUMNS = columns(Webhook.__table__)


async def insert(conn: asyncpg.Connection, values: dict[str, Any]) -> Row:
    """A new subscription (``values`` holds the sealed secret)."""
    names = list(values)
    marks = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return await conn.fetchrow(
        f"INSERT INTO webhooks ({', '.join(names)}) VALUES ({marks}) RETURNING {COLUMNS}", *values.values()
    )


async def get(conn: asyncpg.Connection, webhook_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    """One subscription, locked for update when ``lock``."""
    clause = "FOR UPDATE" if lock else ""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM webhooks WHERE webhook_id = $1 {clause}", webhook_id)


async def page(
    conn: asyncpg.Connection,
    *,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    client_id: str | None,
    status: str | None,
) -> list[Row]:
    """Up to ``limit + 1`` subscriptions, newest first, after the key ``after``."""
    return await fetch_all(
        conn,
        f"""SELECT {COLUMNS} FROM webhooks
            WHERE ($1::text IS NULL OR client_id = $1) AND ($2::text IS NULL OR status = $2)
              AND ($3::timestamp IS NULL OR (created_at, webhook_id) < ($3, $4::uuid))
            ORDER BY created_at DESC, webhook_id DESC LIMIT $5""",
        client_id,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )


async def update(conn: asyncpg.Connection, webhook_id: uuid.UUID, values: dict[str, Any]) -> Row | None:
    """Change the given columns (and ``updated_at``); a re-enabled endpoint starts with a clean record."""
    clause, args = set_clause(values, 2)
    if values.get("status") == "active":
        clause += ", failing_since = NULL"
    return await conn.fetchrow(
        f"UPDATE webhooks SET {clause} WHERE webhook_id = $1 RETURNING {COLUMNS}", webhook_id, *args
    )


async def delete(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> bool:
    """Delete a subscription and (ON DELETE CASCADE) its deliveries."""
    status: str = await conn.execute("DELETE FROM webhooks WHERE webhook_id = $1", webhook_id)
    return status.endswith(" 1")


async def rotate(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, sealed: str, overlap_seconds: float
) -> Row | None:
    """Make ``sealed`` the secret; the current one keeps signing for ``overlap_seconds``."""
    return await conn.fetchrow(
        f"""UPDATE webhooks SET previous_secret = secret, secret = $2,
                previous_secret_expires_at = {_NOW} + make_interval(secs => $3), updated_at = {_NOW}
            WHERE webhook_id = $1 RETURNING {COLUMNS}""",
        webhook_id,
        sealed,
        overlap_seconds,
    )
