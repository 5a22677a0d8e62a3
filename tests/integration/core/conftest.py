"""Fixtures of the core API tests: users registered and logged in through the API itself."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

PASSWORD = "correct horse battery"
_seq = itertools.count()


@dataclass
class Actor:
    """A registered, logged-in user."""

    user_id: uuid.UUID
    email: str
    headers: dict[str, str]


async def register_and_login(
    client: AsyncTestClient[Any], *, email: str | None = None, password: str = PASSWORD
) -> Actor:
    """Register through the API as a new user would, then log in."""
    email = email or f"user{next(_seq)}-{uuid.uuid4().hex[:6]}@example.com"
    r = await client.post(
        "/v1/auth/register",
        json={"email": email, "password": password, "first_name": "Ada", "last_name": "Lovelace"},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    return Actor(uuid.UUID(r.json()["user_id"]), email, {"Authorization": f"Bearer {token}"})


async def make_admin(conn: asyncpg.Connection, client: AsyncTestClient[Any]) -> Actor:
    """A user promoted to admin in the database (as ``corp-astro users set-role`` would)."""
    actor = await register_and_login(client)
    await conn.execute("UPDATE users SET role = 'admin' WHERE user_id = $1", actor.user_id)
    return actor


@pytest.fixture
async def alice(client: AsyncTestClient[Any]) -> Actor:
    return await register_and_login(client)


@pytest.fixture
async def bob(client: AsyncTestClient[Any]) -> Actor:
    return await register_and_login(client)


@pytest.fixture
async def admin(conn: asyncpg.Connection, client: AsyncTestClient[Any]) -> Actor:
    return await make_admin(conn, client)
