"""Reports logic: a report and its ordered sections are created and replaced together."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from core_api.businesses import owned_business_exists
from core_api.reports import repository as repo
from core_api.reports.errors import ReportBusinessNotFoundError, ReportNotFoundError
from core_api.reports.schemas import (
    ReportCreate,
    ReportOut,
    ReportSummary,
    ReportUpdate,
    SectionIn,
    SectionOut,
)
from kernel.db import uuid7
from kernel.errors import ValidationError
from kernel.pagination import Page, decode_cursor, make_page
from kernel.resources import changes, to_struct

__all__ = ["create_report", "delete_report", "get_report", "list_reports", "update_report"]


async def _check_business(
    conn: asyncpg.Connection, user_id: uuid.UUID, business_id: uuid.UUID | None
) -> None:
    # The business must be the report owner's; anyone else's is "not found", like any foreign id.
    if business_id is not None and not await owned_business_exists(conn, user_id, business_id):
        raise ReportBusinessNotFoundError(
            "No such business.",
            details=[{"field": "business_id", "message": "Not one of your businesses."}],
        )


def _section_rows(sections: list[SectionIn]) -> list[tuple[uuid.UUID, str, str, int]]:
    return [(uuid7(), s.title, s.content, s.order) for s in sections]


def _with_sections(report: object, sections: list[object]) -> ReportOut:
    out = to_struct(ReportOut, report)
    out.sections = sorted((to_struct(SectionOut, s) for s in sections), key=lambda s: (s.order, s.section_id))
    return out


async def create_report(conn: asyncpg.Connection, user_id: uuid.UUID, data: ReportCreate) -> ReportOut:
    """Create a report for the caller, with its sections, in one transaction."""
    await _check_business(conn, user_id, data.business_id)
    values = changes(data, exclude=("sections",))
    values.setdefault("generated_date", dt.datetime.now(dt.UTC).date())
    report_id = uuid7()
    row = await repo.insert_report(conn, report_id, user_id, values)
    sections = await repo.replace_sections(conn, report_id, _section_rows(data.sections))
    return _with_sections(row, sections)


async def get_report(conn: asyncpg.Connection, scope: uuid.UUID | None, report_id: uuid.UUID) -> ReportOut:
    """A report visible in ``scope``, with its sections in order."""
    row = await repo.get_report(conn, report_id, scope)
    if row is None:
        raise ReportNotFoundError("No such report.")
    return _with_sections(row, await repo.list_sections(conn, report_id))


async def list_reports(
    conn: asyncpg.Connection,
    scope: uuid.UUID | None,
    *,
    report_type: str | None,
    status: str | None,
    generated_from: dt.date | None,
    generated_to: dt.date | None,
    cursor: str | None,
    limit: int,
) -> Page[ReportSummary]:
    """Reports visible in ``scope``, most recently generated first (without sections)."""
    rows = await repo.list_reports(
        conn,
        scope,
        report_type=report_type,
        status=status,
        generated_from=generated_from,
        generated_to=generated_to,
        after=decode_cursor(cursor, tuple[dt.date, uuid.UUID]),
        limit=limit,
    )
    items = [to_struct(ReportSummary, r) for r in rows]
    return make_page(items, limit, lambda r: (r.generated_date, r.report_id))


async def update_report(
    conn: asyncpg.Connection, user_id: uuid.UUID, report_id: uuid.UUID, data: ReportUpdate
) -> ReportOut:
    """Change one of the caller's reports; ``sections``, when given, replaces all of them."""
    current = await repo.get_report(conn, report_id, user_id, for_update=True)
    if current is None:
        raise ReportNotFoundError("No such report.")
    values = changes(data, exclude=("sections",))
    if isinstance(values.get("business_id"), uuid.UUID):
        await _check_business(conn, user_id, values["business_id"])
    start = values.get("period_start", current["period_start"])
    end = values.get("period_end", current["period_end"])
    if start is not None and end is not None and end < start:
        raise ValidationError(
            "The report's period would end before it starts.",
            details=[{"field": "period_end", "message": "Must not be before period_start."}],
        )
    row = await repo.update_report(conn, report_id, values) if values else current
    if isinstance(data.sections, list):
        sections = await repo.replace_sections(conn, report_id, _section_rows(data.sections))
        if not values:
            row = await repo.update_report(conn, report_id, {})
    else:
        sections = await repo.list_sections(conn, report_id)
    return _with_sections(row, sections)


async def delete_report(conn: asyncpg.Connection, user_id: uuid.UUID, report_id: uuid.UUID) -> None:
    """Delete one of the caller's reports with its sections."""
    if not await repo.delete_report(conn, report_id, user_id):
        raise ReportNotFoundError("No such report.")
