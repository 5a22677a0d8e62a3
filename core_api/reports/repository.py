"""SQL of the reports domain."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from kernel.resources import fetch_all, set_clause

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "delete_report",
    "get_report",
    "insert_report",
    "list_reports",
    "list_sections",
    "replace_sections",
    "update_report",
]

REPORT_COLUMNS = """report_id, user_id, business_id, report_type, title, summary, generated_date,
    period_start, period_end, status, created_at, updated_at"""
SECTION_COLUMNS = 'section_id, report_id, title, content, "order", created_at, updated_at'
Row = Any  # asyncpg.Record


async def insert_report(
    conn: asyncpg.Connection, report_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> Row:
    """Insert a report owned by ``user_id``."""
    cols = ["report_id", "user_id", *values]
    params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    return await conn.fetchrow(
        f"INSERT INTO reports ({', '.join(cols)}) VALUES ({params}) RETURNING {REPORT_COLUMNS}",
        report_id,
        user_id,
        *values.values(),
    )


async def get_report(
    conn: asyncpg.Connection, report_id: uuid.UUID, owner: uuid.UUID | None, *, for_update: bool = False
) -> Row | None:
    """A report of ``owner`` (any owner when None)."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"""SELECT {REPORT_COLUMNS} FROM reports
            WHERE report_id = $1 AND ($2::uuid IS NULL OR user_id = $2){lock}""",
        report_id,
        owner,
    )


async def list_reports(
    conn: asyncpg.Connection,
    owner: uuid.UUID | None,
    *,
    report_type: str | None,
    status: str | None,
    generated_from: dt.date | None,
    generated_to: dt.date | None,
    after: tuple[dt.date, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    """Reports of ``owner`` (everyone's when None), most recently generated first, filtered."""
    return await fetch_all(
        conn,
        f"""SELECT {REPORT_COLUMNS} FROM reports
            WHERE ($1::uuid IS NULL OR user_id = $1)
              AND ($2::text IS NULL OR report_type = $2)
              AND ($3::text IS NULL OR status = $3)
              AND ($4::date IS NULL OR generated_date >= $4)
              AND ($5::date IS NULL OR generated_date <= $5)
              AND ($6::date IS NULL OR (generated_date, report_id) < ($6, $7))
            ORDER BY generated_date DESC, report_id DESC LIMIT $8""",
        owner,
        report_type,
        status,
        generated_from,
        generated_to,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )


async def update_report(conn: asyncpg.Connection, report_id: uuid.UUID, values: dict[str, Any]) -> Row:
    """Apply ``values`` to a report (already checked to be the caller's and locked)."""
    sets, args = set_clause(values, 2)
    return await conn.fetchrow(
        f"UPDATE reports SET {sets} WHERE report_id = $1 RETURNING {REPORT_COLUMNS}", report_id, *args
    )


async def delete_report(conn: asyncpg.Connection, report_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Delete the user's report (its sections cascade)."""
    status = await conn.execute(
        "DELETE FROM reports WHERE report_id = $1 AND user_id = $2", report_id, user_id
    )
    return bool(status == "DELETE 1")


async def list_sections(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[Row]:
    """A report's sections in display order."""
    return await fetch_all(
        conn,
        f'SELECT {SECTION_COLUMNS} FROM report_sections WHERE report_id = $1 ORDER BY "order", section_id',
        report_id,
    )


async def replace_sections(
    conn: asyncpg.Connection, report_id: uuid.UUID, sections: list[tuple[uuid.UUID, str, str, int]]
) -> list[Row]:
    """Replace a report's sections with ``(section_id, title, content, order)`` rows in one statement."""
    await conn.execute("DELETE FROM report_sections WHERE report_id = $1", report_id)
    if not sections:
        return []
    ids, titles, contents, orders = (list(col) for col in zip(*sections, strict=True))
    return await fetch_all(
        conn,
        f"""INSERT INTO report_sections (section_id, report_id, title, content, "order")
            SELECT s.id, $1, s.title, s.content, s.ord
            FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[]) AS s(id, title, content, ord)
            RETURNING {SECTION_COLUMNS}""",
        report_id,
        ids,
        titles,
        contents,
        orders,
    )
