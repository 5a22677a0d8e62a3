"""SQL of the businesses domain."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from kernel.resources import fetch_all, set_clause

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "delete_business",
    "get_business",
    "insert_analysis",
    "insert_business",
    "list_analyses",
    "list_businesses",
    "update_business",
]

BUSINESS_COLUMNS = """business_id, user_id, name, registration_date, registration_time, registration_place,
    industry, size, logo_url, website, description, created_at, updated_at"""
ANALYSIS_COLUMNS = """analysis_id, business_id, analysis_type, chart_data, summary, detailed_analysis,
    recommendations, created_at, updated_at"""
Row = Any  # asyncpg.Record
Key = tuple[dt.datetime, uuid.UUID]


async def insert_business(
    conn: asyncpg.Connection, business_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> Row:
    """Insert a business owned by ``user_id``."""
    cols = ["business_id", "user_id", *values]
    params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    return await conn.fetchrow(
        f"INSERT INTO businesses ({', '.join(cols)}) VALUES ({params}) RETURNING {BUSINESS_COLUMNS}",
        business_id,
        user_id,
        *values.values(),
    )


async def get_business(
    conn: asyncpg.Connection, business_id: uuid.UUID, owner: uuid.UUID | None, *, lock: bool = False
) -> Row | None:
    """A business of ``owner`` (any owner when None); ``lock`` keeps it from being deleted meanwhile."""
    suffix = " FOR KEY SHARE" if lock else ""
    return await conn.fetchrow(
        f"""SELECT {BUSINESS_COLUMNS} FROM businesses
            WHERE business_id = $1 AND ($2::uuid IS NULL OR user_id = $2){suffix}""",
        business_id,
        owner,
    )


async def list_businesses(
    conn: asyncpg.Connection, owner: uuid.UUID | None, *, after: Key | None, limit: int
) -> list[Row]:
    """Businesses of ``owner`` (everyone's when None), newest first."""
    return await fetch_all(
        conn,
        f"""SELECT {BUSINESS_COLUMNS} FROM businesses
            WHERE ($1::uuid IS NULL OR user_id = $1)
              AND ($2::timestamp IS NULL OR (created_at, business_id) < ($2, $3))
            ORDER BY created_at DESC, business_id DESC LIMIT $4""",
        owner,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )


async def update_business(
    conn: asyncpg.Connection, business_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> Row | None:
    """Apply ``values`` to the user's business."""
    if not values:
        return await get_business(conn, business_id, user_id)
    sets, args = set_clause(values, 3)
    return await conn.fetchrow(
        f"""UPDATE businesses SET {sets} WHERE business_id = $1 AND user_id = $2
            RETURNING {BUSINESS_COLUMNS}""",
        business_id,
        user_id,
        *args,
    )


async def delete_business(conn: asyncpg.Connection, business_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Delete the user's business (its analyses cascade; its reports keep existing, unlinked)."""
    status = await conn.execute(
        "DELETE FROM businesses WHERE business_id = $1 AND user_id = $2", business_id, user_id
    )
    return bool(status == "DELETE 1")


async def insert_analysis(
    conn: asyncpg.Connection, analysis_id: uuid.UUID, business_id: uuid.UUID, values: dict[str, Any]
) -> Row:
    """Insert an analysis under a business."""
    cols = ["analysis_id", "business_id", *values]
    params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    return await conn.fetchrow(
        f"INSERT INTO business_analyses ({', '.join(cols)}) VALUES ({params}) RETURNING {ANALYSIS_COLUMNS}",
        analysis_id,
        business_id,
        *values.values(),
    )


async def list_analyses(
    conn: asyncpg.Connection,
    business_id: uuid.UUID,
    *,
    analysis_type: str | None,
    after: Key | None,
    limit: int,
) -> list[Row]:
    """A business's analyses, newest first, optionally of one type."""
    return await fetch_all(
        conn,
        f"""SELECT {ANALYSIS_COLUMNS} FROM business_analyses
            WHERE business_id = $1 AND ($2::text IS NULL OR analysis_type = $2)
              AND ($3::timestamp IS NULL OR (created_at, analysis_id) < ($3, $4))
            ORDER BY created_at DESC, analysis_id DESC LIMIT $5""",
        business_id,
        analysis_type,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
