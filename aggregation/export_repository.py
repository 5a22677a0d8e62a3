"""SQL of the ``exports`` table (asyncpg). Never commits: callers own the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "count_unfinished_exports",
    "expire_exports",
    "get_export",
    "insert_export",
    "list_exports",
    "update_export",
]


async def insert_export(
    conn: asyncpg.Connection, export_id: uuid.UUID, user_id: uuid.UUID, start: dt.date, end: dt.date
) -> asyncpg.Record:
    """Create a pending export."""
    row: asyncpg.Record = await conn.fetchrow(
        """INSERT INTO exports (export_id, requested_by, date_from, date_to) VALUES ($1, $2, $3, $4)
           RETURNING *""",
        export_id,
        user_id,
        start,
        end,
    )
    return row


async def count_unfinished_exports(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Exports of this user still pending or running."""
    n: int = await conn.fetchval(
        "SELECT count(*) FROM exports WHERE requested_by = $1 AND status IN ('pending', 'running')", user_id
    )
    return n


async def get_export(
    conn: asyncpg.Connection, export_id: uuid.UUID, owner: uuid.UUID | None = None
) -> asyncpg.Record | None:
    """One export row; with ``owner``, only if that user requested it."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM exports WHERE export_id = $1 AND ($2::uuid IS NULL OR requested_by = $2)",
        export_id,
        owner,
    )
    return row


async def update_export(conn: asyncpg.Connection, export_id: uuid.UUID, **values: Any) -> None:
    """Set columns of an export row (names are ours, never a client's)."""
    names = list(values)
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    await conn.execute(f"UPDATE exports SET {assignments} WHERE export_id = $1", export_id, *values.values())


async def expire_exports(conn: asyncpg.Connection, finished_before: dt.datetime) -> list[uuid.UUID]:
    """Mark expired the finished exports (done or failed) finished before ``finished_before``; their ids."""
    rows = await conn.fetch(
        """UPDATE exports SET status = 'expired'
           WHERE status IN ('done', 'failed') AND finished_at < $1 RETURNING export_id""",
        finished_before,
    )
    return [r["export_id"] for r in rows]


async def list_exports(
    conn: asyncpg.Connection,
    owner: uuid.UUID | None,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Exports newest first (``owner``: only that user's), after the keyset ``after``, at most ``limit``."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM exports
           WHERE ($1::uuid IS NULL OR requested_by = $1)
             AND ($2::timestamp IS NULL OR (created_at, export_id) < ($2, $3))
           ORDER BY created_at DESC, export_id DESC LIMIT $4""",
        owner,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows
