"""Fixtures for the ingest tests: a source with a write key, request helpers, row counters."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from ingest import service


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
    # The app's pool connections decode JSONB as objects (core_api.db); audit.record relies on it.
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
