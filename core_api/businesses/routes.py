"""HTTP routes of the businesses domain: ``/v1/businesses[/{business_id}[/analyses]]``."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import delete, get, patch, post
from litestar.params import FromPath

from core_api.businesses import schemas, service
from kernel.deps import CurrentUser, DbConn
from kernel.owned import get_route, list_route, route
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page
from kernel.resources import QueryStr50, ResourceController

__all__ = ["route_handlers"]


class BusinessesController(ResourceController):
    """A user's businesses. Admins may read everyone's; changes are the owner's alone."""

    path = "/v1/businesses"
    tags = ["businesses"]
    request_max_body_size = 128 * 1024

    @route(post, "/", service.create_business, schemas.BusinessCreate, schemas.BusinessOut)
    def create(self) -> None:
        """Create a business

        A new business owned by the caller.
        """

    @list_route(service.businesses)
    def list_all(self) -> None:
        """List businesses

        The caller's businesses, newest first (admins: everyone's, or ``user_id``'s).
        """

    @get_route(service.businesses, "/{business_id:uuid}")
    def get_one(self) -> None:
        """A business

        One business (404 if it is someone else's).
        """

    @route(
        patch, "/{business_id:uuid}", service.businesses.patch, schemas.BusinessUpdate, schemas.BusinessOut
    )
    def update(self) -> None:
        """Change a business

        Change the given fields of one of the caller's businesses.
        """

    @route(delete, "/{business_id:uuid}", service.businesses.delete)
    def remove(self) -> None:
        """Delete a business

        Delete one of the caller's businesses with its analyses; its reports stay, unlinked.
        """

    @get("/{business_id:uuid}/analyses", summary="List a business's analyses")
    async def list_analyses(
        self,
        business_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        analysis_type: QueryStr50 = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[schemas.AnalysisOut]:
        """Analyses newest first, optionally of one ``analysis_type``."""
        return await service.list_analyses(
            conn,
            current_user,
            business_id,
            analysis_type=analysis_type,
            cursor=cursor,
            limit=limit,
        )

    @route(
        post,
        "/{business_id:uuid}/analyses",
        service.create_analysis,
        schemas.AnalysisCreate,
        schemas.AnalysisOut,
    )
    def create_analysis(self) -> None:
        """Add an analysis to a business

        A new analysis under one of the caller's businesses.
        """


route_handlers: list[Any] = [BusinessesController]
