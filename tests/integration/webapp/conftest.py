"""Fixtures for the web app: accounts with real passwords, signed in through the form."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from kernel.auth import hash_password

PASSWORD = "a long test passphrase 42"


async def make_account(conn: asyncpg.Connection, role: str) -> str:
    """An active account with ``PASSWORD``; returns its email."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.test"
    await conn.execute(
        """INSERT INTO users (user_id, email, password_hash, first_name, last_name, role)
           VALUES ($1, $2, $3, 'Web', 'App', $4)""",
        uuid.uuid4(),
        email,
        hash_password(PASSWORD),
        role,
    )
    return email


def csrf_of(html: str) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    """GET the form (CSRF cookie), POST it; returns the POST's response."""
    page = await client.get("/app/login")
    assert page.status_code == 200
    return await client.post(
        "/app/login",
        data={"email": email, "password": password, "_csrf": csrf_of(page.text), "next": "/app/experiments"},
        follow_redirects=False,
    )


@dataclass
class Accounts:
    admin: str
    analyst: str
    user: str


@pytest.fixture
async def accounts(conn: asyncpg.Connection) -> Accounts:
    return Accounts(
        await make_account(conn, "admin"),
        await make_account(conn, "analyst"),
        await make_account(conn, "user"),
    )
