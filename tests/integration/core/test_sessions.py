"""Refresh tokens through the API: rotation, reuse detection, and the events that end them."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from tests.integration.core.conftest import PASSWORD, new_email


async def _login(
    client: AsyncTestClient[Any], email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    if email is None:
        email = new_email()
        r = await client.post(
            "/v1/auth/register",
            json={"email": email, "password": password, "first_name": "A", "last_name": "B"},
        )
        assert r.status_code == 201, r.text
    r = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    body["email"] = email
    return body


async def _refresh(client: AsyncTestClient[Any], token: str) -> Any:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_login_returns_a_refresh_token_stored_only_as_its_hash(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    pair = await _login(client)
    assert pair["refresh_token"].startswith("ca_rt_")
    assert pair["refresh_expires_in"] == 30 * 86_400
    stored = await conn.fetchval("SELECT token_hash FROM refresh_tokens")
    assert stored == hashlib.sha256(pair["refresh_token"].encode()).digest()
    assert (
        pair["refresh_token"].encode()
        not in (await conn.fetchval("SELECT row(t.*)::text FROM refresh_tokens t")).encode()
    )


async def test_refresh_rotates_and_a_reused_token_revokes_the_whole_family(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    first = await _login(client)
    r = await _refresh(client, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert me.status_code == 200
    # The spent token again: someone copied it. Refused, and the legitimate successor dies with it.
    r = await _refresh(client, first["refresh_token"])
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_refresh_token"
    r = await _refresh(client, second["refresh_token"])
    assert r.status_code == 401
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'refresh_token_reused'") == 1
    # Another login (another family) is untouched.
    other = await _login(client, first["email"])
    assert (await _refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_and_password_change_end_refresh_tokens(client: AsyncTestClient[Any]) -> None:
    pair = await _login(client)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    assert (await _refresh(client, pair["refresh_token"])).status_code == 401

    pair = await _login(client, pair["email"])
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    new = "a wholly different passphrase"
    r = await client.patch(
        "/v1/users/me", headers=headers, json={"password": new, "current_password": PASSWORD}
    )
    assert r.status_code == 200
    assert (await _refresh(client, pair["refresh_token"])).status_code == 401
    assert (await _login(client, pair["email"], new))["refresh_token"]


async def test_unknown_expired_and_malformed_refresh_tokens(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    assert (await _refresh(client, "ca_rt_nope")).status_code == 401
    pair = await _login(client)
    await conn.execute("UPDATE refresh_tokens SET expires_at = expires_at - interval '31 days'")
    r = await _refresh(client, pair["refresh_token"])
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_refresh_token"
    r = await client.post("/v1/auth/refresh", json={"refresh_token": ""})
    assert 400 <= r.status_code < 500
    r = await client.post("/v1/auth/refresh", json={"token": "x"})
    assert 400 <= r.status_code < 500


async def test_erasure_deletes_refresh_tokens(client: AsyncTestClient[Any], conn: asyncpg.Connection) -> None:
    pair = await _login(client)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await client.delete("/v1/users/me", headers=headers)).status_code == 204
    assert await conn.fetchval("SELECT count(*) FROM refresh_tokens") == 0
    assert (await _refresh(client, pair["refresh_token"])).status_code == 401
