"""What experiments does when another domain's event concerns its tables."""

from __future__ import annotations

import uuid

import asyncpg

from experiments import daily_repository, repository, unit_repository

__all__ = ["on_user_erased"]


async def on_user_erased(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    """Delete the erased user's assignments and identity links (and the stored daily results of the
    tests they were in), in the caller's transaction."""
    return {
        "experiment_daily_results": await daily_repository.delete_for_user(conn, user_id),
        "ab_test_assignments": await repository.delete_user_assignments(conn, user_id),
        "experiment_identity_links": await unit_repository.delete_user_links(conn, user_id),
    }
