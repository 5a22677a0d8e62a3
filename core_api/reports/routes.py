"""HTTP routes of the reports domain: ``/v1/reports[/{report_id}]``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import delete, get, patch, post
from litestar.params import FromQuery, QueryParameter

from core_api.reports import schemas, service
from kernel.deps import CurrentUser, DbConn
from kernel.owned import route
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page
from kernel.resources import QueryStr50, ResourceController

__all__ = ["route_handlers"]


class ReportsController(ResourceController):
    """A user's reports. Admins may read everyone's; changes are the owner's alone."""

    path = "/v1/reports"
    tags = ["reports"]
    # Up to 100 sections of up to 50,000 characters each would be 5 MB; 1 MiB bounds a request.
    request_max_body_size = 1024 * 1024

    @route(post, "/", service.create_report, schemas.ReportCreate, schemas.ReportOut)
    def create(self) -> None:
        """Create a report, optionally with its sections

        A new report; ``business_id`` must be one of the caller's businesses.
        """

    @get("/", summary="List reports")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        report_type: QueryStr50 = None,
        status: FromQuery[schemas.ReportStatus | None] = None,
        generated_from: Annotated[dt.date | None, QueryParameter()] = None,
        generated_to: Annotated[dt.date | None, QueryParameter()] = None,
        user_id: FromQuery[uuid.UUID | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[schemas.ReportSummary]:
        """Most recently generated first; filters on type, status and a ``generated_date`` range."""
        filters = schemas.ReportFilters(report_type, status, generated_from, generated_to)
        return await service.list_reports(
            conn, current_user, user_id=user_id, filters=filters, cursor=cursor, limit=limit
        )

    @route(get, "/{report_id:uuid}", service.get_report, None, schemas.ReportOut)
    def get_one(self) -> None:
        """A report with its sections

        One report, sections in ``order``.
        """

    @route(patch, "/{report_id:uuid}", service.update_report, schemas.ReportUpdate, schemas.ReportOut)
    def update(self) -> None:
        """Change a report

        Change the given fields; ``sections`` replaces every section.
        """

    @route(delete, "/{report_id:uuid}", service.reports.delete)
    def remove(self) -> None:
        """Delete a report

        Delete one of the caller's reports and its sections.
        """


route_handlers: list[Any] = [ReportsController]
