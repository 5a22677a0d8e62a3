"""Every migration is reversible: upgrade, downgrade to base, upgrade again gives an identical schema."""

from __future__ import annotations

import asyncpg

from kernel import migrate
from tests.conftest import TEST_DB_NAME
from tests.integration.schema_introspection import schema_snapshot
from tests.support import recreate_database


async def _snapshot(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        return await schema_snapshot(conn)
    finally:
        await conn.close()


async def _user_tables(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r','p')"
        )
        return sorted(r["relname"] for r in rows)
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade_round_trip(server_url: str) -> None:
    import asyncio

    url = await recreate_database(server_url, f"{TEST_DB_NAME}_roundtrip")
    # Alembic runs its own event loop, so it goes to a worker thread.
    await asyncio.to_thread(migrate.upgrade, url, "heads")
    first = await _snapshot(url)
    assert len(first["relations"]) > 20  # type: ignore[arg-type]

    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _user_tables(url) == ["alembic_version"]

    await asyncio.to_thread(migrate.upgrade, url, "heads")
    assert await _snapshot(url) == first


async def test_models_and_migrations_agree(database_url: str) -> None:
    """Autogenerate finds nothing to do: the SQLAlchemy metadata is the schema's single source of truth."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    from kernel.db import sqlalchemy_url
    from migrations.metadata import include_object, metadata

    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "include_object": include_object,
                            "compare_type": True,
                            "compare_server_default": True,
                        },
                    ),
                    metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []
