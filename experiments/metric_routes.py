"""HTTP API of metric definitions: ``/v1/metrics`` (admin). Mounted by ``experiments.routes``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, FromQuery

from experiments.metric_schemas import (
    DailyResultsOut,
    DimensionResultsOut,
    MetricCreate,
    MetricOut,
    MetricPatch,
)
from experiments.schemas import decode
from experiments.service import daily, dimensions, metrics
from kernel.auth import require_role
from kernel.deps import CurrentUser, DbConn
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page

__all__ = ["MetricController", "daily_results", "dimension_results"]

_MAX_BODY = 64 * 1024


class MetricController(Controller):
    """Metrics computed from ingested events, defined once and used by any experiment (admin)."""

    path = "/v1/metrics"
    tags = ["experiments"]

    @post("/", status_code=201, request_max_body_size=_MAX_BODY)
    async def create(
        self, request: Request[Any, Any, Any], conn: DbConn, current_user: CurrentUser
    ) -> MetricOut:
        """Define a metric: binomial, count, sum, mean, ratio or retention over an ingested event."""
        require_role(current_user, "admin")
        data = decode(await request.body(), MetricCreate)
        return metrics.metric_out(await metrics.create_metric(conn, data, current_user))

    @get("/")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
        cursor: CursorParam = None,
    ) -> Page[MetricOut]:
        """Every metric by name, ``{items, next_cursor}``."""
        require_role(current_user, "admin")
        return await metrics.metric_page(conn, cursor, limit)

    @get("/{name:str}")
    async def get_one(self, name: FromPath[str], conn: DbConn, current_user: CurrentUser) -> MetricOut:
        """One metric."""
        require_role(current_user, "admin")
        return metrics.metric_out(await metrics.get_metric(conn, name))

    @patch("/{name:str}", request_max_body_size=_MAX_BODY)
    async def update(
        self, name: FromPath[str], request: Request[Any, Any, Any], conn: DbConn, current_user: CurrentUser
    ) -> MetricOut:
        """Change a metric (any field but its name); experiments using it see the change in their results."""
        require_role(current_user, "admin")
        data = decode(await request.body(), MetricPatch)
        return metrics.metric_out(await metrics.update_metric(conn, name, data, current_user))


@get("/v1/experiments/{name:str}/results/dimensions/{dimension:str}", tags=["experiments"])
async def dimension_results(
    name: FromPath[str],
    dimension: FromPath[str],
    conn: DbConn,
    current_user: CurrentUser,
    top: FromQuery[int] = 10,
    alpha: FromQuery[float] = 0.05,
) -> DimensionResultsOut:
    """Every metric per value of a context dimension (platform, os, country, app_version, trait:<name>):
    the top values by units, then ``other`` and ``unknown``. Exploratory: not corrected (analyst)."""
    require_role(current_user, "analyst")
    return await dimensions.dimension_results(conn, name, dimension, top=top, alpha=alpha)


@get("/v1/experiments/{name:str}/results/daily", tags=["experiments"])
async def daily_results(
    name: FromPath[str], conn: DbConn, current_user: CurrentUser, alpha: FromQuery[float] = 0.05
) -> DailyResultsOut:
    """Each declared metric's cumulative units, mean and CI per variant at the end of every day (UTC) of
    the experiment, the most recent 90 days (analyst). Closed days are stored once computed (again only
    after late data or a change of the metrics); today's point is computed on request."""
    require_role(current_user, "analyst")
    return await daily.daily_results(conn, name, alpha=alpha)
