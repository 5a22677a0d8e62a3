"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import MediaType, Response, get

from kernel.deps import Db
from kernel.migrate import head_revisions

__all__ = ["route_handlers"]


@get("/health", media_type=MediaType.JSON, tags=["ops"], sync_to_thread=False)
def health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@get("/ready", media_type=MediaType.JSON, tags=["ops"])
async def ready(db: Db) -> Response[dict[str, Any]]:
    """200 only when the database answers and its schema is at the migration head(s)."""
    expected = head_revisions()
    try:
        async with asyncio.timeout(3):
            rows = await db.pool.fetch("SELECT version_num FROM alembic_version")
    except TimeoutError:
        return _not_ready("database_unavailable", "The database did not answer within 3 s.")
    except Exception as exc:
        if type(exc).__name__ == "UndefinedTableError":
            return _not_ready("migrations_pending", "The schema has not been migrated.")
        return _not_ready("database_unavailable", f"The database is unavailable ({type(exc).__name__}).")
    current = {r["version_num"] for r in rows}
    if current != expected:
        return _not_ready(
            "migrations_pending",
            f"The schema is at {sorted(current)} but the code expects {sorted(expected)}.",
        )
    return Response({"status": "ready", "revision": sorted(current)}, status_code=200)


def _not_ready(code: str, message: str) -> Response[dict[str, Any]]:
    return Response({"code": code, "message": message}, status_code=503, headers={"Retry-After": "1"})


route_handlers = [health, ready]
