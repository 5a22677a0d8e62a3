"""HTTP routes of the reports domain: ``/v1/reports[/{report_id}]``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from core_api.reports import service
from core_api.reports.schemas import (
    ReportCreate,
    ReportFilters,
    ReportOut,
    ReportStatus,
    ReportSummary,
    ReportUpdate,
)
from kernel.deps import CurrentUser, DbConn
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page
from kernel.resources import NO_NUL, ResourceController

__all__ = ["route_handlers"]

ReportTypeParam = Annotated[str | None, QueryParameter(max_length=50, pattern=NO_NUL)]


class ReportsController(ResourceController):
    """A user's reports. Admins may read everyone's; changes are the owner's alone."""

    path = "/v1/reports"
    tags = ["reports"]
    # Up to 100 sections of up to 50,000 characters each would be 5 MB; 1 MiB bounds a request.
    request_max_body_size = 1024 * 1024

    @post("/", summary="Create a report, optionally with its sections")
    async def create(
        self, data: JSONBody[ReportCreate], conn: DbConn, current_user: CurrentUser
    ) -> ReportOut:
        """A new report; ``business_id`` must be one of the caller's businesses."""
        return await service.create_report(conn, current_user, data)

    @get("/", summary="List reports")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        report_type: ReportTypeParam = None,
        status: FromQuery[ReportStatus | None] = None,
        generated_from: Annotated[dt.date | None, QueryParameter()] = None,
        generated_to: Annotated[dt.date | None, QueryParameter()] = None,
        user_id: FromQuery[uuid.UUID | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[ReportSummary]:
        """Most recently generated first; filters on type, status and a ``generated_date`` range."""
        filters = ReportFilters(report_type, status, generated_from, generated_to)
        return await service.list_reports(
            conn, current_user, user_id=user_id, filters=filters, cursor=cursor, limit=limit
        )

    @get("/{report_id:uuid}", summary="A report with its sections")
    async def get_one(
        self, report_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> ReportOut:
        """One report, sections in ``order``."""
        return await service.get_report(conn, current_user, report_id)

    @patch("/{report_id:uuid}", summary="Change a report")
    async def update(
        self,
        report_id: FromPath[uuid.UUID],
        data: JSONBody[ReportUpdate],
        conn: DbConn,
        current_user: CurrentUser,
    ) -> ReportOut:
        """Change the given fields; ``sections`` replaces every section."""
        return await service.update_report(conn, current_user, report_id, data)

    @delete("/{report_id:uuid}", summary="Delete a report")
    async def remove(self, report_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser) -> None:
        """Delete one of the caller's reports and its sections."""
        await service.reports.delete(conn, current_user, report_id)


route_handlers: list[Any] = [ReportsController]
