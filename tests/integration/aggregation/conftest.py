"""Fixtures of the aggregation tests: an open Database, users, events and experiments inserted directly."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from kernel.auth import create_access_token, hash_password
from kernel.db import Database
from kernel.settings import Settings

EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "event_name",
    "event_category",
    "device_id",
    "session_id",
    "ip_address",
    "user_agent",
    "timestamp",
    "created_at",
    "source_id",
    "message_id",
    "external_user_id",
    "anonymous_id",
    "received_at",
)

_PASSWORD_HASH = hash_password("correct horse battery staple")


@dataclass
class Event:
    """One raw event row (defaults fill what a test does not care about)."""

    timestamp: dt.datetime
    event_name: str = "page_view"
    event_category: str = "engagement"
    user_id: uuid.UUID | None = None
    external_user_id: str | None = None
    anonymous_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    created_at: dt.datetime | None = None
    properties: dict[str, str] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def record(self) -> tuple[Any, ...]:
        return (
            self.event_id,
            self.user_id,
            self.event_name,
            self.event_category,
            self.device_id,
            self.session_id,
            "203.0.113.7",
            "test-agent/1.0",
            self.timestamp,
            self.created_at or dt.datetime.now(dt.UTC).replace(tzinfo=None),
            None,
            None,
            self.external_user_id,
            self.anonymous_id,
            self.timestamp,
        )


async def insert_events(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Insert raw events and their properties with binary COPY, as ingest does."""
    await conn.copy_records_to_table(
        "analytics_events", records=[e.record() for e in events], columns=list(EVENT_COLUMNS)
    )
    props = [
        (uuid.uuid4(), e.event_id, name, value, e.timestamp)
        for e in events
        for name, value in e.properties.items()
    ]
    if props:
        await conn.copy_records_to_table(
            "event_properties",
            records=props,
            columns=["property_id", "event_id", "property_name", "property_value", "timestamp"],
        )


async def create_user(conn: asyncpg.Connection, role: str = "user") -> uuid.UUID:
    """A user row with the given role."""
    user_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO users (user_id, email, password_hash, first_name, last_name, role)
           VALUES ($1, $2, $3, 'Test', 'User', $4)""",
        user_id,
        f"{user_id.hex[:12]}@example.com",
        _PASSWORD_HASH,
        role,
    )
    return user_id


async def create_users(conn: asyncpg.Connection, n: int) -> list[uuid.UUID]:
    """``n`` plain users."""
    return [await create_user(conn) for _ in range(n)]


def auth_header(settings: Settings, user_id: uuid.UUID, role: str) -> dict[str, str]:
    """The Authorization header of a signed-in user."""
    token, _ = create_access_token(settings, user_id, role)
    return {"Authorization": f"Bearer {token}"}


async def create_test(
    conn: asyncpg.Connection, goal_event: str | None, variants: Sequence[str] = ("control", "treatment")
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """An A/B test and its variants (fills the experiments domain's added columns when they exist)."""
    test_id = await conn.fetchval(
        """INSERT INTO ab_tests (name, start_date, goal_event) VALUES ($1, CURRENT_DATE, $2)
           RETURNING test_id""",
        f"test-{uuid.uuid4().hex[:8]}",
        goal_event,
    )
    columns = {
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'ab_test_variants'"
        )
    }
    ids = []
    for i, name in enumerate(variants):
        if "position" in columns:
            vid = await conn.fetchval(
                """INSERT INTO ab_test_variants (test_id, name, traffic_percentage, position, is_control)
                   VALUES ($1, $2, 50, $3, $4) RETURNING variant_id""",
                test_id,
                name,
                i,
                i == 0,
            )
        else:
            vid = await conn.fetchval(
                """INSERT INTO ab_test_variants (test_id, name, traffic_percentage)
                   VALUES ($1, $2, 50) RETURNING variant_id""",
                test_id,
                name,
            )
        ids.append(vid)
    return test_id, ids


async def assign(
    conn: asyncpg.Connection,
    test_id: uuid.UUID,
    variant_id: uuid.UUID,
    user_id: uuid.UUID,
    assigned_at: dt.datetime,
) -> uuid.UUID:
    """An assignment of ``user_id`` to a variant at ``assigned_at``."""
    aid: uuid.UUID = await conn.fetchval(
        """INSERT INTO ab_test_assignments (test_id, variant_id, user_id, assigned_at)
           VALUES ($1, $2, $3, $4) RETURNING assignment_id""",
        test_id,
        variant_id,
        user_id,
        assigned_at,
    )
    return aid


@pytest.fixture
async def db(clean_db: str) -> AsyncIterator[Database]:
    """The app's Database (an asyncpg pool) on the emptied test database."""
    database = Database(clean_db, max_size=4)
    await database.open()
    try:
        yield database
    finally:
        await database.close()
