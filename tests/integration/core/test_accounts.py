"""Registration, login, roles and the audit trail, through the API as a client sees them."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from kernel.auth import decode_access_token
from kernel.settings import Settings
from tests.integration.core.conftest import PASSWORD, Actor, new_email, register_and_login


async def test_register_hashes_with_argon2id_and_never_returns_the_hash(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    email = new_email()
    r = await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "first_name": "A", "last_name": "B"}
    )
    assert r.status_code == 201
    body = r.json()
    assert "password" not in r.text
    assert "hash" not in r.text
    assert body["role"] == "user"
    assert body["status"] == "active"
    assert body["subscription_tier"] == "free"
    stored = await conn.fetchval(
        "SELECT password_hash FROM users WHERE user_id = $1", uuid.UUID(body["user_id"])
    )
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    # Default preferences exist from the start.
    assert (
        await conn.fetchval(
            "SELECT language FROM user_preferences WHERE user_id = $1", uuid.UUID(body["user_id"])
        )
        == "en"
    )


async def test_email_is_unique_case_insensitively(client: AsyncTestClient[Any]) -> None:
    email = new_email()
    await register_and_login(client, email=email)
    r = await client.post(
        "/v1/auth/register",
        json={"email": email.upper(), "password": PASSWORD, "first_name": "A", "last_name": "B"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "email_taken"
    # Login is case-insensitive too.
    r = await client.post("/v1/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "password",
    ["short1", "aaaaaaaaaaaaaaaa", "password123", "x" * 129, "mynamexyz-secret"],
)
async def test_password_policy(client: AsyncTestClient[Any], password: str) -> None:
    r = await client.post(
        "/v1/auth/register",
        json={"email": "mynamexyz@example.com", "password": password, "first_name": "A", "last_name": "B"},
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert r.json()["details"][0]["field"] == "body.password"


async def test_login_issues_a_short_lived_token_and_records_it(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, settings: Settings
) -> None:
    actor = await register_and_login(client)
    r = await client.post("/v1/auth/login", json={"email": actor.email, "password": PASSWORD})
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.jwt_ttl_seconds
    claims = decode_access_token(settings, body["access_token"])
    assert claims["sub"] == str(actor.user_id)
    assert claims["exp"] - claims["iat"] == settings.jwt_ttl_seconds
    me = (
        await client.get("/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    ).json()
    assert me["last_login_at"] is not None
    logins = await conn.fetch(
        "SELECT * FROM audit_log WHERE action = 'login' AND actor_user_id = $1", actor.user_id
    )
    assert len(logins) == 2
    assert PASSWORD not in json.dumps([dict(r) for r in logins], default=str)


async def test_failed_logins_are_refused_and_audited(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    actor = await register_and_login(client)
    r = await client.post("/v1/auth/login", json={"email": actor.email, "password": "wrong password!"})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_credentials"
    r2 = await client.post("/v1/auth/login", json={"email": new_email(), "password": "wrong password!"})
    assert r2.status_code == 401
    assert r2.json() == r.json()
    rows = await conn.fetch(
        "SELECT subject_id, details FROM audit_log WHERE action = 'login_failed' ORDER BY created_at"
    )
    assert [json.loads(r["details"])["reason"] for r in rows] == ["bad_password", "unknown_account"]
    assert rows[0]["subject_id"] == str(actor.user_id)


@pytest.mark.parametrize("status", ["suspended", "deleted"])
async def test_disabled_accounts_cannot_log_in_or_use_tokens(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, status: str
) -> None:
    actor = await register_and_login(client)
    await conn.execute("UPDATE users SET status = $2 WHERE user_id = $1", actor.user_id, status)
    r = await client.post("/v1/auth/login", json={"email": actor.email, "password": PASSWORD})
    assert r.status_code == 403
    assert r.json()["code"] == "account_disabled"
    # A wrong password does not reveal the status.
    r = await client.post("/v1/auth/login", json={"email": actor.email, "password": "wrong password!"})
    assert r.status_code == 401
    assert (await client.get("/v1/users/me", headers=actor.headers)).status_code == 401


async def test_failed_logins_back_off_per_account_and_address(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, settings: Settings
) -> None:
    limits = settings.auth_limits
    actor = await register_and_login(client)
    other = await register_and_login(client)
    for _ in range(limits.account_ip_attempts):
        r = await client.post("/v1/auth/login", json={"email": actor.email, "password": "wrong password!"})
        assert r.status_code == 401
    r = await client.post("/v1/auth/login", json={"email": actor.email.upper(), "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["code"] == "too_many_login_attempts"
    assert 1 <= int(r.headers["retry-after"]) <= limits.backoff_seconds
    # Another account from the same address is unaffected.
    assert (
        await client.post("/v1/auth/login", json={"email": other.email, "password": PASSWORD})
    ).status_code == 200
    # When the backoff has passed, one more attempt is allowed; a failure then doubles the backoff.
    await conn.execute("UPDATE login_throttle SET blocked_until = blocked_until - interval '2 hours'")
    r = await client.post("/v1/auth/login", json={"email": actor.email, "password": "wrong password!"})
    assert r.status_code == 401
    r = await client.post("/v1/auth/login", json={"email": actor.email, "password": PASSWORD})
    assert r.status_code == 429
    assert limits.backoff_seconds < int(r.headers["retry-after"]) <= 2 * limits.backoff_seconds
    await conn.execute("UPDATE login_throttle SET blocked_until = blocked_until - interval '2 hours'")
    assert (
        await client.post("/v1/auth/login", json={"email": actor.email, "password": PASSWORD})
    ).status_code == 200


async def test_failed_logins_are_rate_limited_per_address(
    conn: asyncpg.Connection, settings: Settings, tmp_path: Any
) -> None:
    from corp_astro.app import create_app
    from tests.conftest import make_settings

    limited = make_settings(
        settings.database_url or "", tmp_path, auth_limits=replace(settings.auth_limits, ip_attempts=3)
    )
    async with AsyncTestClient(app=create_app(limited)) as client:
        actor = await register_and_login(client)  # a success does not count against the address
        for _ in range(3):
            r = await client.post(
                "/v1/auth/login", json={"email": new_email(), "password": "wrong password!"}
            )
            assert r.status_code == 401
        r = await client.post("/v1/auth/login", json={"email": actor.email, "password": PASSWORD})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1


async def test_profile_update_and_password_change(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    actor = await register_and_login(client)
    r = await client.patch(
        "/v1/users/me",
        headers=actor.headers,
        json={
            "first_name": "Grace",
            "phone_number": "+1 555 0100",
            "date_of_birth": "1906-12-09",
            "time_of_birth": "07:30:00",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["first_name"] == "Grace"
    assert r.json()["time_of_birth"] == "07:30:00"
    r = await client.patch("/v1/users/me", headers=actor.headers, json={"phone_number": None})
    assert r.json()["phone_number"] is None
    assert r.json()["first_name"] == "Grace"
    new = "an entirely new passphrase"
    r = await client.patch(
        "/v1/users/me", headers=actor.headers, json={"password": new, "current_password": PASSWORD}
    )
    assert r.status_code == 200
    assert (
        await client.post("/v1/auth/login", json={"email": actor.email, "password": PASSWORD})
    ).status_code == 401
    assert (
        await client.post("/v1/auth/login", json={"email": actor.email, "password": new})
    ).status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'password_changed'") == 1


async def test_admin_changes_roles_with_an_audit_trail(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, alice: Actor, admin: Actor
) -> None:
    r = await client.patch(f"/v1/users/{alice.user_id}", headers=admin.headers, json={"role": "analyst"})
    assert r.status_code == 200
    assert r.json()["role"] == "analyst"
    row = await conn.fetchrow("SELECT * FROM audit_log WHERE action = 'role_changed'")
    assert row["actor_user_id"] == admin.user_id
    assert row["subject_id"] == str(alice.user_id)
    assert json.loads(row["details"]) == {"from": "user", "to": "analyst", "via": "api"}
    # Suspension takes effect on the next request, even with a token issued before.
    r = await client.patch(f"/v1/users/{alice.user_id}", headers=admin.headers, json={"status": "suspended"})
    assert r.status_code == 200
    assert (await client.get("/v1/users/me", headers=alice.headers)).status_code == 401
    # An admin cannot demote (or suspend) itself and lock everyone out.
    r = await client.patch(f"/v1/users/{admin.user_id}", headers=admin.headers, json={"role": "user"})
    assert r.status_code == 409
    listing = (await client.get("/v1/users?limit=1", headers=admin.headers)).json()
    assert len(listing["items"]) == 1
    assert listing["next_cursor"]
    assert (await client.get(f"/v1/users?cursor={listing['next_cursor']}", headers=admin.headers)).json()[
        "items"
    ]


async def test_devices_register_refresh_deactivate_and_move(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, alice: Actor, bob: Actor
) -> None:
    r = await client.post(
        "/v1/users/me/devices", headers=alice.headers, json={"device_token": "tok", "platform": "ios"}
    )
    assert r.status_code == 201
    device_id = r.json()["device_id"]
    r = await client.post(
        "/v1/users/me/devices",
        headers=alice.headers,
        json={"device_token": "tok", "platform": "ios", "app_version": "2.0"},
    )
    assert r.status_code == 200
    assert r.json()["device_id"] == device_id
    assert r.json()["app_version"] == "2.0"
    assert (
        await client.delete(f"/v1/users/me/devices/{device_id}", headers=alice.headers)
    ).status_code == 204
    assert (await client.get(f"/v1/users/me/devices/{device_id}", headers=alice.headers)).json()[
        "active"
    ] is False
    r = await client.post(
        "/v1/users/me/devices", headers=alice.headers, json={"device_token": "tok", "platform": "ios"}
    )
    assert r.json()["active"] is True  # a refresh reactivates
    # The same token registered by another account (the phone changed hands) stops Alice's pushes.
    r = await client.post(
        "/v1/users/me/devices", headers=bob.headers, json={"device_token": "tok", "platform": "ios"}
    )
    assert r.status_code == 201
    assert (
        await conn.fetchval("SELECT active FROM user_devices WHERE device_id = $1", uuid.UUID(device_id))
        is False
    )
    r2 = await client.post(
        "/v1/users/me/devices", headers=alice.headers, json={"device_token": "tok2", "platform": "web"}
    )
    r = await client.patch(
        f"/v1/users/me/devices/{r2.json()['device_id']}", headers=alice.headers, json={"device_token": "tok"}
    )
    assert r.status_code == 409
    assert r.json()["code"] == "device_token_taken"
    # Re-pointing a device at a token follows the same rule as registering it: Alice's "tok2" stops.
    bobs = (await client.get("/v1/users/me/devices", headers=bob.headers)).json()["items"][0]["device_id"]
    r = await client.patch(f"/v1/users/me/devices/{bobs}", headers=bob.headers, json={"device_token": "tok2"})
    assert r.status_code == 200
    assert r.json()["active"] is True
    assert await conn.fetchval(
        "SELECT active FROM user_devices WHERE device_id = $1", uuid.UUID(r2.json()["device_id"])
    ) is False  # fmt: skip


async def test_preferences_and_subscriptions(
    client: AsyncTestClient[Any], alice: Actor, admin: Actor
) -> None:
    r = await client.get("/v1/users/me/preferences", headers=alice.headers)
    assert r.json()["language"] == "en"
    assert r.json()["timezone"] == "UTC"
    r = await client.put(
        "/v1/users/me/preferences",
        headers=alice.headers,
        json={"language": "zh-Hant", "timezone": "Asia/Kolkata", "notification_preferences": {"daily": True}},
    )
    assert r.status_code == 200
    r = await client.put("/v1/users/me/preferences", headers=alice.headers, json={"timezone": "Europe/Paris"})
    assert r.json()["language"] == "zh-Hant"
    assert r.json()["timezone"] == "Europe/Paris"
    assert r.json()["notification_preferences"] == {"daily": True}

    r = await client.post(
        "/v1/subscriptions",
        headers=admin.headers,
        json={
            "user_id": str(alice.user_id),
            "plan_id": "pro",
            "status": "trialing",
            "start_date": "2026-01-01",
        },
    )
    assert r.status_code == 201
    sub_id = r.json()["subscription_id"]
    r = await client.patch(
        f"/v1/subscriptions/{sub_id}",
        headers=admin.headers,
        json={"status": "active", "end_date": "2027-01-01"},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "active"
    mine = (await client.get("/v1/users/me/subscriptions", headers=alice.headers)).json()["items"]
    assert [s["subscription_id"] for s in mine] == [sub_id]
    assert mine[0]["end_date"] == "2027-01-01"
    assert (
        await client.get(f"/v1/users/me/subscriptions/{sub_id}", headers=alice.headers)
    ).status_code == 200
