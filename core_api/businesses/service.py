"""Businesses logic. Writes are scoped to the owner; reads to the owner, or to anyone for admins.

Businesses are a plain ``kernel.owned`` resource; analyses are rows of a business, so each call first
finds the business in the caller's scope (another user's business is not found).
"""

from __future__ import annotations

import uuid

import asyncpg

from core_api.businesses import repository as repo
from core_api.businesses.errors import BusinessNotFoundError
from core_api.businesses.schemas import AnalysisCreate, AnalysisOut, BusinessCreate, BusinessOut
from kernel.auth import AuthUser
from kernel.owned import OwnedResource
from kernel.pagination import Page
from kernel.resources import changes

__all__ = [
    "analyses",
    "businesses",
    "create_analysis",
    "create_business",
    "list_analyses",
    "owned_business_exists",
]

businesses = OwnedResource(repo.businesses, BusinessOut, BusinessNotFoundError, "No such business.")
analyses = OwnedResource(repo.analyses, AnalysisOut, BusinessNotFoundError, "No such business.")


async def create_business(conn: asyncpg.Connection, user: AuthUser, data: BusinessCreate) -> BusinessOut:
    """Create a business owned by the caller."""
    return await businesses.create(conn, user.user_id, changes(data))


async def owned_business_exists(conn: asyncpg.Connection, user_id: uuid.UUID, business_id: uuid.UUID) -> bool:
    """Whether ``business_id`` is a business of ``user_id``; it is locked against deletion until commit."""
    return await repo.businesses.get(conn, business_id, user_id, lock="FOR KEY SHARE") is not None


async def list_analyses(
    conn: asyncpg.Connection,
    user: AuthUser,
    business_id: uuid.UUID,
    *,
    analysis_type: str | None,
    cursor: str | None,
    limit: int,
) -> Page[AnalysisOut]:
    """Analyses of a business ``user`` may read, newest first, optionally of one type."""
    after = analyses.decode(cursor)
    await businesses.get(conn, user, business_id)
    filters = [("analysis_type = {}", analysis_type)]
    return await analyses.page(conn, business_id, after=after, limit=limit, filters=filters)


async def create_analysis(
    conn: asyncpg.Connection, user: AuthUser, business_id: uuid.UUID, data: AnalysisCreate
) -> AnalysisOut:
    """Add an analysis to one of the caller's businesses."""
    if not await owned_business_exists(conn, user.user_id, business_id):
        raise businesses.not_found()
    return await analyses.create(conn, business_id, changes(data))
