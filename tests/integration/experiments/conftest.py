"""Fixtures for the experiments API: users, tokens and write keys arranged directly in the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from kernel.auth import create_access_token, generate_write_key, hash_write_key
from kernel.settings import Settings

Client = AsyncTestClient  # type: ignore[type-arg]


async def make_user(conn: asyncpg.Connection, role: str = "user") -> uuid.UUID:
    """Insert an active user and return its id."""
    user_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO users (user_id, email, password_hash, first_name, last_name, role)
           VALUES ($1, $2, 'x', 'Test', 'User', $3)""",
        user_id,
        f"{user_id}@example.test",
        role,
    )
    return user_id


async def make_users(conn: asyncpg.Connection, n: int) -> list[uuid.UUID]:
    """Insert ``n`` users at once (binary COPY)."""
    ids = [uuid.uuid4() for _ in range(n)]
    await conn.copy_records_to_table(
        "users",
        records=[(u, f"{u}@example.test", "x", "Bulk", "User") for u in ids],
        columns=["user_id", "email", "password_hash", "first_name", "last_name"],
    )
    return ids


def bearer(settings: Settings, user_id: uuid.UUID, role: str) -> dict[str, str]:
    """Authorization header with a fresh access token."""
    token, _ = create_access_token(settings, user_id, role)
    return {"Authorization": f"Bearer {token}"}


async def make_write_key(conn: asyncpg.Connection, name: str = "app") -> str:
    """Insert an api_sources row and return its (plain) write key."""
    key = generate_write_key()
    await conn.execute(
        "INSERT INTO api_sources (name, key_hash, key_prefix) VALUES ($1, $2, $3)",
        name,
        hash_write_key(key),
        key[:12],
    )
    return key


def basic(key: str) -> dict[str, str]:
    """HTTP Basic header with the write key as username and an empty password."""
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@dataclass
class Actors:
    admin_id: uuid.UUID
    analyst_id: uuid.UUID
    user_id: uuid.UUID
    admin: dict[str, str]
    analyst: dict[str, str]
    user: dict[str, str]
    app: dict[str, str]


@pytest.fixture
async def actors(conn: asyncpg.Connection, settings: Settings) -> Actors:
    admin_id = await make_user(conn, "admin")
    analyst_id = await make_user(conn, "analyst")
    user_id = await make_user(conn, "user")
    key = await make_write_key(conn)
    return Actors(
        admin_id,
        analyst_id,
        user_id,
        bearer(settings, admin_id, "admin"),
        bearer(settings, analyst_id, "analyst"),
        bearer(settings, user_id, "user"),
        basic(key),
    )


def definition(name: str = "checkout", **overrides: Any) -> dict[str, Any]:
    """A valid experiment body (50/50, started 2020-01-01, no end)."""
    body: dict[str, Any] = {
        "name": name,
        "description": "Checkout button colour",
        "start_date": "2020-01-01",
        "variants": [
            {"name": "control", "traffic_percentage": 50},
            {"name": "green", "traffic_percentage": 50.00},
        ],
    }
    body.update(overrides)
    return body


async def create(
    client: Client, admin: dict[str, str], name: str = "checkout", **overrides: Any
) -> dict[str, Any]:
    """Create an experiment through the API and return its body."""
    r = await client.post("/v1/experiments", json=definition(name, **overrides), headers=admin)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
async def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real app (kernel, middleware, error mapping, lifespan) with only the experiments domain.

    Other domains are under construction in parallel; their start-up must not decide whether these
    tests pass. The whole-app wiring is covered by the suite-wide app tests.
    """
    from kernel.app import create_app

    async with AsyncTestClient(app=create_app(settings, ("core_api.accounts", "ingest", "experiments"))) as c:
        yield c


@pytest.fixture
async def db(clean_db: str) -> Any:
    """An app-like pool on the emptied database, for calling the service directly."""
    from kernel.db import Database

    database = Database(clean_db, max_size=30)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


async def seed_arm(
    conn: asyncpg.Connection,
    test_id: uuid.UUID,
    variant_id: uuid.UUID,
    users: int,
    conversions: int,
    phase: int = 1,
) -> None:
    """``users`` new users assigned to a variant, the first ``conversions`` of them converted (COPY)."""
    ids = await make_users(conn, users)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[(uuid.uuid4(), test_id, variant_id, u, i < conversions, phase) for i, u in enumerate(ids)],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "converted", "phase"],
    )


async def variant_ids(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """The test id and its variants' ids by name."""
    rows = await conn.fetch(
        """SELECT t.test_id, v.name, v.variant_id FROM ab_tests t JOIN ab_test_variants v USING (test_id)
           WHERE t.name = $1""",
        name,
    )
    return rows[0]["test_id"], {r["name"]: r["variant_id"] for r in rows}


async def copy_events(conn: asyncpg.Connection, events: list[Any], props: list[Any]) -> None:
    """Binary COPY of raw rows, as ingest stores them: events ``(event_id, user_id, event_name,
    event_category, timestamp)`` and properties ``(property_id, event_id, name, value, timestamp)``."""
    await conn.copy_records_to_table(
        "analytics_events",
        records=events,
        columns=["event_id", "user_id", "event_name", "event_category", "timestamp"],
    )
    await conn.copy_records_to_table(
        "event_properties",
        records=props,
        columns=["property_id", "event_id", "property_name", "property_value", "timestamp"],
    )
