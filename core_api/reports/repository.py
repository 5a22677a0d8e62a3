"""SQL of the reports domain: reports are ``kernel.owned`` rows; sections are replaced as a whole."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from core_api.reports.models import Report, ReportSection
from kernel.owned import OwnedTable
from kernel.resources import columns, fetch_all

if TYPE_CHECKING:
    import asyncpg

__all__ = ["SECTION_COLUMNS", "list_sections", "replace_sections", "reports"]

# Lists are "most recently generated first".
reports = OwnedTable(Report.__table__, order="generated_date")
SECTION_COLUMNS = columns(ReportSection.__table__)
Row = Any  # asyncpg.Record


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
