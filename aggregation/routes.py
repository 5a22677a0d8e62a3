"""HTTP API of the aggregation domain: rollup queries and Parquet exports (analyst or admin only).

Exports are visible to every analyst and admin, not only to whoever asked: they contain the same events
any analyst may export, and sharing a finished export saves running it twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Litestar, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import File

from aggregation import exports, jobs
from aggregation import repository as repo
from aggregation.memory import configure_allocators
from aggregation.schemas import ActiveUsersRow, EventRollupRow, ExportOut, ExportRequest, export_out
from kernel.auth import require_role
from kernel.deps import CurrentUser, Db, DbConn
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page, decode_cursor, make_page
from kernel.resources import read_scope

__all__ = ["on_startup", "route_handlers"]

MAX_HOURLY_DAYS = 31
MAX_DAILY_DAYS = 366

# A value outside these answers 422 naming the allowed values (kernel.problems).
Granularity = Literal["hour", "day"]
FromParam = Annotated[str | None, QueryParameter(name="from", description="First UTC day, YYYY-MM-DD.")]
ToParam = Annotated[
    str | None, QueryParameter(name="to", description="Last UTC day (inclusive), YYYY-MM-DD.")
]


async def on_startup(app: Litestar) -> None:
    """Configure the allocators before anything loads Polars (the scheduled rollups, an export's reads);
    one API export runs at a time per process, the others wait their turn as ``pending``."""
    configure_allocators()
    app.state.export_gate = asyncio.Semaphore(1)


def _period_text(period: dt.datetime | dt.date) -> str:
    if isinstance(period, dt.datetime):
        return period.isoformat() + "Z"  # naive UTC from the database
    return period.isoformat()


class AnalyticsController(Controller):
    """Rollups, served from the rollup tables (never from raw events)."""

    path = "/v1/analytics"
    tags = ["analytics"]

    @get("/events", summary="Event counts per hour or day")
    async def events(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        date_from: FromParam = None,
        date_to: ToParam = None,
        granularity: FromQuery[Granularity] = "day",
        event_name: Annotated[str | None, QueryParameter(max_length=100)] = None,
        event_category: Annotated[str | None, QueryParameter(max_length=50)] = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
        cursor: CursorParam = None,
    ) -> Page[EventRollupRow]:
        """Rows ``{period, event_name, event_category, events, users, devices, sessions}`` in period order.

        ``granularity=hour`` allows up to 31 days, ``day`` up to 366.
        """
        require_role(current_user, "analyst")
        max_days = MAX_HOURLY_DAYS if granularity == "hour" else MAX_DAILY_DAYS
        start, end = exports.parse_range(date_from, date_to, max_days)
        after: Any
        if granularity == "hour":
            after = decode_cursor(cursor, tuple[dt.datetime, str, str])
            if after is not None:
                after = (after[0].replace(tzinfo=None), after[1], after[2])
        else:
            after = decode_cursor(cursor, tuple[dt.date, str, str])
        rows = await repo.query_event_rollups(
            conn,
            granularity=granularity,
            start=start,
            end=end,
            event_name=event_name,
            event_category=event_category,
            after=after,
            limit=limit + 1,
        )
        items = [
            EventRollupRow(
                period=_period_text(r["period"]),
                event_name=r["event_name"],
                event_category=r["event_category"],
                events=r["events"],
                users=r["users"],
                devices=r["devices"],
                sessions=r["sessions"],
            )
            for r in rows
        ]
        return make_page(items, limit, lambda i: (i.period, i.event_name, i.event_category))

    @get("/active-users", summary="Daily, weekly and monthly active users")
    async def active_users(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        date_from: FromParam = None,
        date_to: ToParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
        cursor: CursorParam = None,
    ) -> Page[ActiveUsersRow]:
        """Rows ``{day, dau, wau, mau}`` (exact distinct people; WAU 7 days, MAU 30 days ending ``day``)."""
        require_role(current_user, "analyst")
        start, end = exports.parse_range(date_from, date_to, MAX_DAILY_DAYS)
        after = decode_cursor(cursor, tuple[dt.date])
        rows = await repo.query_active_users(conn, start, end, after[0] if after else None, limit + 1)
        items = [ActiveUsersRow(day=r["day"], dau=r["dau"], wau=r["wau"], mau=r["mau"]) for r in rows]
        return make_page(items, limit, lambda i: (i.day,))


class ExportController(Controller):
    """Parquet exports of raw events, produced in the background."""

    path = "/v1/exports"
    tags = ["exports"]
    # The request is two dates: anything bigger is refused (413) while it is read.
    request_max_body_size = 4 * 1024

    @post("/", status_code=202, summary="Start an export of raw events to Parquet")
    async def create(
        self,
        data: JSONBody[ExportRequest],
        conn: DbConn,
        db: Db,
        current_user: CurrentUser,
        request: Request[Any, Any, Any],
    ) -> Response[ExportOut]:
        """202 with the export's id; poll ``GET /v1/exports/{id}``. At most 366 days."""
        require_role(current_user, "analyst")
        row = await exports.create_export(conn, current_user, data.date_from, data.to)
        state = request.app.state
        # The task runs after the response, which is sent only after the request's transaction commits.
        task = BackgroundTask(
            jobs.run_export, db, state.settings.data_dir, row["export_id"], state.export_gate
        )
        return Response(export_out(row), status_code=202, background=task)

    @get("/", summary="The caller's exports (an admin's: everyone's)")
    async def list_exports(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
        cursor: CursorParam = None,
    ) -> Page[ExportOut]:
        """Newest first, keyset-paginated: ``{items, next_cursor}``."""
        require_role(current_user, "analyst")
        return await exports.list_exports(conn, read_scope(current_user), cursor, limit)

    @get("/{export_id:uuid}", summary="An export's status")
    async def status(
        self, export_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> ExportOut:
        """The export's state, row count and, once done, its download URL."""
        require_role(current_user, "analyst")
        return export_out(await exports.get_export(conn, export_id, read_scope(current_user)))

    @get("/{export_id:uuid}/download", summary="Download a finished export (one Parquet file)")
    async def download(
        self,
        export_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        request: Request[Any, Any, Any],
    ) -> File:
        """The Parquet file (zstd; an ``event_date`` column; 409 until the export is done)."""
        require_role(current_user, "analyst")
        path, row = await exports.download_path(
            conn, request.app.state.settings.data_dir, export_id, read_scope(current_user)
        )
        return File(
            path=path,
            filename=f"events_{row['date_from']}_{row['date_to']}.parquet",
            media_type="application/vnd.apache.parquet",
        )


route_handlers: list[Any] = [AnalyticsController, ExportController]
