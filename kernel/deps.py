"""Litestar dependency providers (the request's transaction, the authenticated caller) and route options."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from litestar.di import NamedDependency

from kernel.auth import AuthUser, bearer_token, load_auth_user
from kernel.db import Database
from kernel.errors import AuthenticationError

if TYPE_CHECKING:
    from litestar import Request
    from litestar.datastructures import State

__all__ = ["SKIP_COMPRESSION", "CurrentUser", "Db", "DbConn", "dependencies"]

# Annotate handler parameters with these to receive the app-level dependencies below.
Db: TypeAlias = NamedDependency[Database]
DbConn: TypeAlias = NamedDependency[asyncpg.Connection]
CurrentUser: TypeAlias = NamedDependency[AuthUser]

# Set ``opt={SKIP_COMPRESSION: True}`` on a hot handler whose bodies are always smaller than the gzip
# middleware's minimum size: they are never compressed, so the middleware's per-request header parsing
# and send wrapper are pure cost there.
SKIP_COMPRESSION = "skip_compression"


def provide_db(state: State) -> Database:
    """The process's database (pool)."""
    db: Database = state.db
    return db


async def provide_conn(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """One connection and one transaction per request, committed at the boundary.

    Litestar resolves this cleanup before the response is sent, so a client never sees a success for
    work that then failed to commit; a handler exception rolls back.
    """
    db: Database = state.db
    async with db.pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            yield conn
        except BaseException:
            await tr.rollback()
            raise
        else:
            await tr.commit()


async def provide_current_user(request: Request[Any, Any, Any], conn: DbConn) -> AuthUser:
    """The caller identified by a Bearer access token (401 otherwise)."""
    token = bearer_token(request)
    if token is None:
        raise AuthenticationError("A Bearer access token is required.")
    return await load_auth_user(conn, request.app.state, token)


dependencies: dict[str, Any] = {}


def _build() -> None:
    from litestar.di import Provide

    dependencies.update(
        db=Provide(provide_db, sync_to_thread=False),
        conn=Provide(provide_conn),
        current_user=Provide(provide_current_user),
    )


_build()
