"""``/app/analytics`` (from the rollups, never raw events) and ``/app/exports`` (start, watch, download)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath
from litestar.response import File, Redirect, Template
from markupsafe import Markup

import aggregation
from kernel.deps import Db, DbConn
from kernel.errors import DomainError
from kernel.resources import read_scope
from webapp import charts, fmt
from webapp.pages import Viewer, page, read_form, remember_viewer, today

__all__ = ["AnalyticsPage", "ExportPages", "event_stacks"]

MAX_ROWS = 20_000  # rollup rows one page reads at most (31 days x 24 hours x ~27 names)
STACKS = 6  # the busiest event names get their own colour; the rest are "other"


def _period_label(period: dt.date | dt.datetime, hourly: bool) -> str:
    if hourly and isinstance(period, dt.datetime):
        return period.strftime("%m-%d %Hh")
    return period.strftime("%m-%d") if isinstance(period, dt.date) else str(period)


def event_stacks(
    rows: list[Any], hourly: bool
) -> tuple[list[str], list[tuple[str, list[float]]], list[tuple[str, int, str]]]:
    """x labels, the stacks (busiest names, then "other") and the top-events table (name, events, share)."""
    periods = sorted({r["period"] for r in rows})
    index = {p: i for i, p in enumerate(periods)}
    per_name: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(periods))
    totals: dict[str, int] = defaultdict(int)
    for r in rows:
        per_name[r["event_name"]][index[r["period"]]] += r["events"]
        totals[r["event_name"]] += r["events"]
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    stacks = [(n, per_name[n]) for n in ranked[:STACKS]]
    if len(ranked) > STACKS:
        rest = [sum(per_name[n][i] for n in ranked[STACKS:]) for i in range(len(periods))]
        stacks.append(("other", rest))
    grand = sum(totals.values()) or 1
    top = [(n, totals[n], fmt.percent(totals[n] / grand, 1)) for n in ranked[:20]]
    return [_period_label(p, hourly) for p in periods], stacks, top


def _range(request: Request[Any, Any, Any], hourly: bool) -> tuple[str, str]:
    end = today()
    default_from = end - dt.timedelta(days=1 if hourly else 29)
    return (
        request.query_params.get("from") or default_from.isoformat(),
        request.query_params.get("to") or end.isoformat(),
    )


class AnalyticsPage(Controller):
    path = "/app/analytics"
    include_in_schema = False

    @get("/")
    async def analytics(self, request: Request[Any, Any, Any], conn: DbConn, viewer: Viewer) -> Template:
        """DAU/WAU/MAU, events by name (stacked, hourly or daily) and the top events, for a date range."""
        remember_viewer(request, viewer)
        hourly = request.query_params.get("granularity") == "hour"
        raw_from, raw_to = _range(request, hourly)
        context: dict[str, Any] = {"title": "Analytics", "from": raw_from, "to": raw_to, "hourly": hourly}
        try:
            start, end = aggregation.parse_range(raw_from, raw_to, 31 if hourly else 366)
        except DomainError as exc:
            context["error"] = exc.message
            return page(request, "analytics.html", context, 422)
        active = await aggregation.query_active_users(conn, start, end, None, 400)
        labels = [r["day"].strftime("%m-%d") for r in active]
        series = [charts.Series(k.upper(), [float(r[k]) for r in active]) for k in ("dau", "wau", "mau")]
        rows = await aggregation.query_event_rollups(
            conn, granularity="hour" if hourly else "day", start=start, end=end,
            event_name=None, event_category=None, after=None, limit=MAX_ROWS + 1,
        )  # fmt: skip
        x, stacks, top = event_stacks(rows[:MAX_ROWS], hourly)
        context.update(
            active_chart=Markup(charts.line_chart(labels, series, "Daily, weekly and monthly active users")),  # noqa: S704
            events_chart=Markup(charts.stacked_bars(x, stacks, "Events by name")),  # noqa: S704
            active_rows=[
                (r["day"].isoformat(), fmt.count(r["dau"]), fmt.count(r["wau"]), fmt.count(r["mau"]))
                for r in active[-7:]
            ],
            top=[(n, fmt.count(c), share) for n, c, share in top],
            truncated=len(rows) > MAX_ROWS,
        )
        return page(request, "analytics.html", context)


class ExportPages(Controller):
    path = "/app/exports"
    include_in_schema = False

    @get("/")
    async def index(self, request: Request[Any, Any, Any], conn: DbConn, viewer: Viewer) -> Template:
        """The viewer's exports (an admin's: everyone's), newest first, and the form to start one."""
        remember_viewer(request, viewer)
        listing = await aggregation.list_exports(conn, read_scope(viewer), None, 50)
        end = today()
        context = {
            "title": "Exports",
            "exports": listing.items,
            "from": (end - dt.timedelta(days=6)).isoformat(),
            "to": end.isoformat(),
            "started": request.query_params.get("started"),
        }
        return page(request, "exports.html", context)

    @post("/", status_code=303, request_max_body_size=4 * 1024)
    async def start(
        self, request: Request[Any, Any, Any], conn: DbConn, db: Db, viewer: Viewer
    ) -> Response[Any]:
        """Start an export of a range; it runs after the response (its row is committed by then)."""
        form = await read_form(request)
        row = await aggregation.create_export(conn, viewer, form.get("from"), form.get("to"))
        state = request.app.state
        task = BackgroundTask(
            aggregation.run_export, db, state.settings.data_dir, row["export_id"], state.export_gate
        )
        return Redirect(f"/app/exports?started={row['export_id']}", status_code=303, background=task)

    @get("/{export_id:uuid}/status")
    async def status(
        self, export_id: FromPath[uuid.UUID], conn: DbConn, viewer: Viewer
    ) -> aggregation.ExportOut:
        """The export's state as JSON, for the page's progress script."""
        return aggregation.export_out(await aggregation.get_export(conn, export_id, read_scope(viewer)))

    @get("/{export_id:uuid}/download")
    async def download(
        self, export_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], conn: DbConn, viewer: Viewer
    ) -> File:
        """The finished export's Parquet file."""
        path, row = await aggregation.download_path(
            conn, request.app.state.settings.data_dir, export_id, read_scope(viewer)
        )
        return File(
            path=path,
            filename=f"events_{row['date_from']}_{row['date_to']}.parquet",
            media_type="application/vnd.apache.parquet",
        )
