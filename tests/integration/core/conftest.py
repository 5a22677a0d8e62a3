"""Fixtures of the core API tests.

``alice``, ``bob`` and ``admin`` are inserted directly with a password hash computed once per run and a
token minted with the app's settings, which keeps the many authorization and validation tests fast;
the tests of registration and login go through the API as a new user would (``register_and_login``).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from kernel.auth import create_access_token, hash_password
from kernel.db import uuid7
from kernel.settings import Settings

PASSWORD = "correct horse battery"
_seq = itertools.count()


@dataclass
class Actor:
    """A user with a valid access token."""

    user_id: uuid.UUID
    email: str
    headers: dict[str, str]


def new_email() -> str:
    return f"user{next(_seq)}-{uuid.uuid4().hex[:6]}@example.com"


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)


async def make_user(conn: asyncpg.Connection, settings: Settings, *, role: str = "user") -> Actor:
    """A user row plus a token, as registration and login would produce."""
    user_id, email = uuid7(), new_email()
    await conn.execute(
        """INSERT INTO users (user_id, email, password_hash, first_name, last_name, role)
           VALUES ($1, $2, $3, 'Test', 'User', $4)""",
        user_id,
        email,
        _password_hash(),
        role,
    )
    token, _ = create_access_token(settings, user_id, role)
    return Actor(user_id, email, {"Authorization": f"Bearer {token}"})


async def register_and_login(
    client: AsyncTestClient[Any], *, email: str | None = None, password: str = PASSWORD
) -> Actor:
    """Register through the API as a new user would, then log in."""
    email = email or new_email()
    r = await client.post(
        "/v1/auth/register",
        json={"email": email, "password": password, "first_name": "Ada", "last_name": "Lovelace"},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    return Actor(uuid.UUID(body["user_id"]), email, {"Authorization": f"Bearer {body['access_token']}"})


@pytest.fixture
async def alice(conn: asyncpg.Connection, settings: Settings) -> Actor:
    return await make_user(conn, settings)


@pytest.fixture
async def bob(conn: asyncpg.Connection, settings: Settings) -> Actor:
    return await make_user(conn, settings)


@pytest.fixture
async def admin(conn: asyncpg.Connection, settings: Settings) -> Actor:
    return await make_user(conn, settings, role="admin")
