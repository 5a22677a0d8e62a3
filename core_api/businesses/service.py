"""Businesses logic. Writes are scoped to the owner; reads to the owner, or to anyone for admins."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from core_api.businesses import repository as repo
from core_api.businesses.errors import BusinessNotFoundError
from core_api.businesses.schemas import (
    AnalysisCreate,
    AnalysisOut,
    BusinessCreate,
    BusinessOut,
    BusinessUpdate,
)
from kernel.db import uuid7
from kernel.pagination import Page, decode_cursor, make_page
from kernel.resources import changes, to_struct

__all__ = [
    "create_analysis",
    "create_business",
    "delete_business",
    "get_business",
    "list_analyses",
    "list_businesses",
    "owned_business_exists",
    "update_business",
]

_Key = tuple[dt.datetime, uuid.UUID]


def _naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=None)


async def create_business(conn: asyncpg.Connection, user_id: uuid.UUID, data: BusinessCreate) -> BusinessOut:
    """Create a business owned by the caller."""
    row = await repo.insert_business(conn, uuid7(), user_id, changes(data))
    return to_struct(BusinessOut, row)


async def list_businesses(
    conn: asyncpg.Connection, scope: uuid.UUID | None, *, cursor: str | None, limit: int
) -> Page[BusinessOut]:
    """Businesses visible in ``scope``, newest first."""
    rows = await repo.list_businesses(conn, scope, after=decode_cursor(cursor, _Key), limit=limit)
    items = [to_struct(BusinessOut, r) for r in rows]
    return make_page(items, limit, lambda b: (_naive(b.created_at), b.business_id))


async def get_business(
    conn: asyncpg.Connection, scope: uuid.UUID | None, business_id: uuid.UUID
) -> BusinessOut:
    """A business visible in ``scope``."""
    row = await repo.get_business(conn, business_id, scope)
    if row is None:
        raise BusinessNotFoundError("No such business.")
    return to_struct(BusinessOut, row)


async def owned_business_exists(conn: asyncpg.Connection, user_id: uuid.UUID, business_id: uuid.UUID) -> bool:
    """Whether ``business_id`` is a business of ``user_id``; it is locked against deletion until commit."""
    return await repo.get_business(conn, business_id, user_id, lock=True) is not None


async def update_business(
    conn: asyncpg.Connection, user_id: uuid.UUID, business_id: uuid.UUID, data: BusinessUpdate
) -> BusinessOut:
    """Change one of the caller's businesses."""
    row = await repo.update_business(conn, business_id, user_id, changes(data))
    if row is None:
        raise BusinessNotFoundError("No such business.")
    return to_struct(BusinessOut, row)


async def delete_business(conn: asyncpg.Connection, user_id: uuid.UUID, business_id: uuid.UUID) -> None:
    """Delete one of the caller's businesses and its analyses."""
    if not await repo.delete_business(conn, business_id, user_id):
        raise BusinessNotFoundError("No such business.")


async def list_analyses(
    conn: asyncpg.Connection,
    scope: uuid.UUID | None,
    business_id: uuid.UUID,
    *,
    analysis_type: str | None,
    cursor: str | None,
    limit: int,
) -> Page[AnalysisOut]:
    """Analyses of a business visible in ``scope``, newest first."""
    after = decode_cursor(cursor, _Key)
    if await repo.get_business(conn, business_id, scope) is None:
        raise BusinessNotFoundError("No such business.")
    rows = await repo.list_analyses(conn, business_id, analysis_type=analysis_type, after=after, limit=limit)
    items = [to_struct(AnalysisOut, r) for r in rows]
    return make_page(items, limit, lambda a: (_naive(a.created_at), a.analysis_id))


async def create_analysis(
    conn: asyncpg.Connection, user_id: uuid.UUID, business_id: uuid.UUID, data: AnalysisCreate
) -> AnalysisOut:
    """Add an analysis to one of the caller's businesses."""
    if not await owned_business_exists(conn, user_id, business_id):
        raise BusinessNotFoundError("No such business.")
    row = await repo.insert_analysis(conn, uuid7(), business_id, changes(data))
    return to_struct(AnalysisOut, row)
