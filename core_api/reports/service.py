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
    ReportFilters,
    ReportOut,
    ReportSummary,
    ReportUpdate,
    SectionIn,
    SectionOut,
)
from kernel import events
from kernel.auth import AuthUser
from kernel.db import uuid7
from kernel.errors import ValidationError
from kernel.owned import OwnedResource
from kernel.pagination import Page
from kernel.resources import changes, to_struct

__all__ = ["ReportFilters", "create_report", "get_report", "list_reports", "reports", "update_report"]


async def _check_business(
    conn: asyncpg.Connection, user_id: uuid.UUID, business_id: uuid.UUID | None
) -> None:
    # The business must be the report owner's; anyone else's is "not found", like any foreign id.
    if business_id is not None and not await owned_business_exists(conn, user_id, business_id):
        raise ReportBusinessNotFoundError(
            "No such business.",
            details=[{"field": "body.business_id", "message": "Not one of your businesses."}],
        )


def _section_rows(sections: list[SectionIn]) -> list[tuple[uuid.UUID, str, str, int]]:
    return [(uuid7(), s.title, s.content, s.order) for s in sections]


def _with_sections(report: object, sections: list[object]) -> ReportOut:
    out = to_struct(ReportOut, report)
    out.sections = sorted((to_struct(SectionOut, s) for s in sections), key=lambda s: (s.order, s.section_id))
    return out


reports = OwnedResource(repo.reports, ReportSummary, ReportNotFoundError, "No such report.")


async def create_report(conn: asyncpg.Connection, user: AuthUser, data: ReportCreate) -> ReportOut:
    """Create a report for the caller, with its sections, in one transaction."""
    await _check_business(conn, user.user_id, data.business_id)
    values = changes(data, exclude=("sections",))
    values.setdefault("generated_date", dt.datetime.now(dt.UTC).date())
    report_id = uuid7()
    row = await repo.reports.insert(conn, {"report_id": report_id, "user_id": user.user_id, **values})
    created = {"report_id": report_id, "user_id": user.user_id, "report_type": data.report_type}
    await events.emit(conn, "report.created", created)
    sections = await repo.replace_sections(conn, report_id, _section_rows(data.sections))
    return _with_sections(row, sections)


async def get_report(conn: asyncpg.Connection, user: AuthUser, report_id: uuid.UUID) -> ReportOut:
    """A report ``user`` may read, with its sections in order."""
    row = await repo.reports.get(conn, report_id, reports.scope(user))
    if row is None:
        raise reports.not_found()
    return _with_sections(row, await repo.list_sections(conn, report_id))


async def list_reports(
    conn: asyncpg.Connection,
    user: AuthUser,
    *,
    user_id: uuid.UUID | None,
    filters: ReportFilters,
    cursor: str | None,
    limit: int,
) -> Page[ReportSummary]:
    """Reports ``user`` may read, most recently generated first (without sections), filtered."""
    conditions = [
        ("report_type = {}", filters.report_type),
        ("status = {}", filters.status),
        ("generated_date >= {}", filters.generated_from),
        ("generated_date <= {}", filters.generated_to),
    ]
    return await reports.list(conn, user, cursor=cursor, limit=limit, user_id=user_id, filters=conditions)


async def update_report(
    conn: asyncpg.Connection, user: AuthUser, report_id: uuid.UUID, data: ReportUpdate
) -> ReportOut:
    """Change one of the caller's reports; ``sections``, when given, replaces all of them."""
    current = await repo.reports.get(conn, report_id, user.user_id, lock="FOR UPDATE")
    if current is None:
        raise reports.not_found()
    values = changes(data, exclude=("sections",))
    if isinstance(values.get("business_id"), uuid.UUID):
        await _check_business(conn, user.user_id, values["business_id"])
    start = values.get("period_start", current["period_start"])
    end = values.get("period_end", current["period_end"])
    if start is not None and end is not None and end < start:
        raise ValidationError(
            "The report's period would end before it starts.",
            details=[{"field": "body.period_end", "message": "Must not be before period_start."}],
        )
    replaced = isinstance(data.sections, list)
    # New sections alone still move the report's ``updated_at``.
    row = (
        await repo.reports.update(conn, report_id, None, values, touch=replaced)
        if values or replaced
        else current
    )
    if isinstance(data.sections, list):
        sections = await repo.replace_sections(conn, report_id, _section_rows(data.sections))
    else:
        sections = await repo.list_sections(conn, report_id)
    return _with_sections(row, sections)
