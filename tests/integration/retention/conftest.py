"""Retention tests change partitions (DDL), so each gets its own database cloned from a migrated template."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from kernel import migrate
from kernel.db import Database
from tests.conftest import TEST_DB_NAME
from tests.support import recreate_database

TEMPLATE = f"{TEST_DB_NAME}_rt_template"
CLONE = f"{TEST_DB_NAME}_rt"


@pytest.fixture(scope="session")
def retention_template(server_url: str) -> str:
    """A migrated database used as the template of every retention test's database."""
    url = asyncio.run(recreate_database(server_url, TEMPLATE))
    migrate.upgrade(url, "heads")
    return url


@pytest.fixture
async def rdb_url(server_url: str, retention_template: str) -> str:
    return await recreate_database(server_url, CLONE, template=TEMPLATE)


@pytest.fixture
async def rdb(rdb_url: str) -> AsyncIterator[Database]:
    """An open Database on a fresh clone of the migrated schema."""
    db = Database(rdb_url, max_size=6)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def insert_events(db: Database, times: list[dt.datetime], *, props: int = 2, name: str = "tap") -> None:
    """Insert one event per time, each with ``props`` properties, the way ingest stores them."""
    async with db.transaction() as conn:
        for ts in times:
            event_id = await conn.fetchval(
                """INSERT INTO analytics_events (event_id, event_name, event_category, device_id, "timestamp",
                                                 anonymous_id)
                   VALUES (gen_random_uuid(), $1, 'track', 'dev-1', $2, 'anon-1') RETURNING event_id""",
                name,
                ts,
            )
            for i in range(props):
                await conn.execute(
                    """INSERT INTO event_properties (property_id, event_id, property_name, property_value, "timestamp")
                       VALUES (gen_random_uuid(), $1, $2, 'v', $3)""",
                    event_id,
                    f"p{i}",
                    ts,
                )


async def partition_names(db: Database, parent: str) -> set[str]:
    rows = await db.pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
        parent,
    )
    return {r["relname"] for r in rows}
