"""Fixtures shared by the whole suite.

The schema is built once per run by the Alembic migrations, on the embedded test PostgreSQL under
``.data/test-postgres`` or on ``TEST_DATABASE_URL``; every integration test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import settings as hypothesis_settings
from litestar.testing import AsyncTestClient

from corp_astro.app import create_app
from kernel import migrate
from kernel.settings import AuthLimits, Settings
from tests.support import EmbeddedTestServer, LiveServer, recreate_database, truncate_all

# Property tests check results, not speed: on a loaded 2-core CI machine a per-example deadline only
# produces flaky failures (hypothesis' DeadlineExceeded), so it is off for the whole suite.
hypothesis_settings.register_profile("corp-astro", deadline=None)
hypothesis_settings.load_profile("corp-astro")

# Overridable so that two test runs on one server do not drop each other's database.
TEST_DB_NAME = os.environ.get("CORP_ASTRO_TEST_DB", "corp_astro_test")


@pytest.fixture(scope="session")
def embedded_pg() -> EmbeddedTestServer | None:
    """The embedded test server, or None when TEST_DATABASE_URL points elsewhere."""
    if os.environ.get("TEST_DATABASE_URL"):
        return None
    return EmbeddedTestServer()


@pytest.fixture(scope="session")
def server_url(embedded_pg: EmbeddedTestServer | None) -> str:
    """A URL on the test server (any database on it)."""
    return os.environ.get("TEST_DATABASE_URL") or embedded_pg.url("postgres")  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def database_url(server_url: str) -> str:
    """A fresh test database, migrated to head once for the whole run."""
    url = asyncio.run(recreate_database(server_url, TEST_DB_NAME))
    migrate.upgrade(url, "heads")
    return url


@pytest.fixture
async def clean_db(database_url: str) -> str:
    """Empty tables before the test; returns the database URL."""
    await truncate_all(database_url)
    return database_url


@pytest.fixture
async def conn(clean_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the (emptied) test database, for arranging and checking rows."""
    c = await asyncpg.connect(clean_db, server_settings={"timezone": "UTC"})
    try:
        yield c
    finally:
        await c.close()


TEST_AUTH_LIMITS = AuthLimits(register_ip_attempts=100_000, register_global_attempts=100_000)


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings for an in-process app under test."""
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "log_level": "WARNING",
        "jwt_secret_override": "test-secret-0123456789abcdef0123456789",
        "scheduler_enabled": False,
        # Suites register many accounts from one address; the registration limits have their own tests.
        "auth_limits": TEST_AUTH_LIMITS,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(clean_db: str, tmp_path: Path) -> Settings:
    """Settings pointing at the emptied test database."""
    return make_settings(clean_db, tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """An in-process HTTP client for the full app (lifespan included)."""
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


@pytest.fixture
def live_server(clean_db: str) -> Iterator[LiveServer]:
    """A real ``corp-astro serve`` process on 127.0.0.1 against the test database."""
    with LiveServer(clean_db) as server:
        yield server
