"""Fixtures for the ingest tests: a source with a write key, request helpers, row counters."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from corp_astro.app import create_app
from ingest import service
from ingest.config import IngestConfig
from ingest.pipeline import Pipeline
from kernel.db import Database
from tests.conftest import make_settings
from tests.support import LiveServer

# What ingest tests write, emptied before each test. These tables hold a few rows here, and DELETE is
# much cheaper than TRUNCATE, which recreates every partition's files.
_TABLES = ("event_properties", "analytics_events", "ingest_message_ids", "api_sources", "audit_log", "users")
# The group-commit pipeline of the pipeline and ledger tests: no linger, generous timeouts.
FAST = IngestConfig(flush_linger_ms=0.0, flushers=2, ack_timeout_seconds=20, flush_timeout_seconds=20)


@pytest.fixture(scope="module")
async def client(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """One in-process app for the module (starting the full app per test costs about a second)."""
    settings = make_settings(database_url, tmp_path_factory.mktemp("ingest"))
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database with the ingest tables emptied."""
    c = await asyncpg.connect(database_url, server_settings={"timezone": "UTC"})
    try:
        await c.execute("; ".join(f"DELETE FROM {t}" for t in _TABLES))
        yield c
    finally:
        await c.close()


@dataclass(frozen=True)
class KeyedSource:
    source_id: uuid.UUID
    write_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()}


@pytest.fixture
async def source(conn: asyncpg.Connection) -> KeyedSource:
    """A fresh event source and its write key."""
    # The app's pool connections decode JSONB as objects (kernel.db); audit.record relies on it.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    async with conn.transaction():
        created = await service.create_source(conn, "test-app")
    return KeyedSource(created.source_id, created.write_key)


def track(message_id: str, event: str = "Signed Up", **extra: object) -> dict[str, object]:
    """A minimal valid track message."""
    msg: dict[str, object] = {
        "type": "track",
        "event": event,
        "userId": "user-1",
        "messageId": message_id,
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": {"plan": "pro", "seats": 3},
    }
    msg.update(extra)
    return msg


async def count(conn: asyncpg.Connection, table: str, where: str = "TRUE", *args: object) -> int:
    value: int = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
    return value


@pytest.fixture(scope="module")
def module_live_server(database_url: str) -> Iterator[LiveServer]:
    """One real ``corp-astro serve`` process for the module (a start costs seconds on a busy machine)."""
    with LiveServer(database_url) as server:
        yield server


@pytest.fixture
async def live(module_live_server: LiveServer, conn: asyncpg.Connection) -> tuple[LiveServer, KeyedSource]:
    """The module's server process and a fresh source whose key it accepts."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    async with conn.transaction():
        created = await service.create_source(conn, "live-app")
    return module_live_server, KeyedSource(created.source_id, created.write_key)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, max_size=4)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def pipeline(db: Database) -> AsyncIterator[Pipeline]:
    p = Pipeline(db, FAST)
    p.start()
    try:
        yield p
    finally:
        await p.close()
