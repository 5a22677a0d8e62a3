"""HTTP routes of the businesses domain: ``/v1/businesses[/{business_id}[/analyses]]``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from core_api.businesses import service
from core_api.businesses.schemas import (
    AnalysisCreate,
    AnalysisOut,
    BusinessCreate,
    BusinessOut,
    BusinessUpdate,
)
from kernel.deps import CurrentUser, DbConn
from kernel.owned import get_route, list_route
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page
from kernel.resources import NO_NUL, ResourceController, changes

__all__ = ["route_handlers"]

AnalysisTypeParam = Annotated[str | None, QueryParameter(max_length=50, pattern=NO_NUL)]


class BusinessesController(ResourceController):
    """A user's businesses. Admins may read everyone's; changes are the owner's alone."""

    path = "/v1/businesses"
    tags = ["businesses"]
    request_max_body_size = 128 * 1024

    @post("/", summary="Create a business")
    async def create(
        self, data: JSONBody[BusinessCreate], conn: DbConn, current_user: CurrentUser
    ) -> BusinessOut:
        """A new business owned by the caller."""
        return await service.create_business(conn, current_user, data)

    list_all = list_route(
        service.businesses,
        summary="List businesses",
        doc="The caller's businesses, newest first (admins: everyone's, or ``user_id``'s).",
        module=__name__,
    )
    get_one = get_route(
        service.businesses,
        "business_id",
        summary="A business",
        doc="One business (404 if it is someone else's).",
        module=__name__,
    )

    @patch("/{business_id:uuid}", summary="Change a business")
    async def update(
        self,
        business_id: FromPath[uuid.UUID],
        data: JSONBody[BusinessUpdate],
        conn: DbConn,
        current_user: CurrentUser,
    ) -> BusinessOut:
        """Change the given fields of one of the caller's businesses."""
        return await service.businesses.update(conn, current_user, business_id, changes(data))

    @delete("/{business_id:uuid}", summary="Delete a business")
    async def remove(self, business_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser) -> None:
        """Delete one of the caller's businesses with its analyses; its reports stay, unlinked."""
        await service.businesses.delete(conn, current_user, business_id)

    @get("/{business_id:uuid}/analyses", summary="List a business's analyses")
    async def list_analyses(
        self,
        business_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        analysis_type: AnalysisTypeParam = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[AnalysisOut]:
        """Analyses newest first, optionally of one ``analysis_type``."""
        return await service.list_analyses(
            conn,
            current_user,
            business_id,
            analysis_type=analysis_type,
            cursor=cursor,
            limit=limit,
        )

    @post("/{business_id:uuid}/analyses", summary="Add an analysis to a business")
    async def create_analysis(
        self,
        business_id: FromPath[uuid.UUID],
        data: JSONBody[AnalysisCreate],
        conn: DbConn,
        current_user: CurrentUser,
    ) -> AnalysisOut:
        """A new analysis under one of the caller's businesses."""
        return await service.create_analysis(conn, current_user, business_id, data)


route_handlers: list[Any] = [BusinessesController]
