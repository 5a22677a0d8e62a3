"""``DELETE /v1/users/me``: the account and everything it owns are erased, row by row; events are kept."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from tests.integration.core.conftest import PASSWORD, Actor, register_and_login

# Every table holding rows a user owns, and how to find that user's rows in it.
OWNED: dict[str, str] = {
    "users": "SELECT user_id FROM users WHERE user_id = $1",
    "user_devices": "SELECT device_id FROM user_devices WHERE user_id = $1",
    "subscriptions": "SELECT subscription_id FROM subscriptions WHERE user_id = $1",
    "user_preferences": "SELECT preference_id FROM user_preferences WHERE user_id = $1",
    "businesses": "SELECT business_id FROM businesses WHERE user_id = $1",
    "business_analyses": "SELECT analysis_id FROM business_analyses WHERE business_id = ANY($2::uuid[])",
    "reports": "SELECT report_id FROM reports WHERE user_id = $1",
    "report_sections": "SELECT section_id FROM report_sections WHERE report_id = ANY($3::uuid[])",
    "notifications": "SELECT notification_id FROM notifications WHERE user_id = $1",
    "scheduled_notifications": "SELECT schedule_id FROM scheduled_notifications WHERE user_id = $1",
    "ab_test_assignments": "SELECT assignment_id FROM ab_test_assignments WHERE user_id = $1",
}


async def _give_everything(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, user: Actor, admin: Actor
) -> None:
    """One or more rows of every kind a user can own, made through the API where there is a route."""
    h = user.headers
    assert (
        await client.put("/v1/users/me/preferences", headers=h, json={"language": "fr"})
    ).status_code == 200
    for token in ("a", "b"):
        r = await client.post(
            "/v1/users/me/devices",
            headers=h,
            json={"device_token": f"{token}-{user.user_id}", "platform": "android"},
        )
        assert r.status_code == 201
    r = await client.post(
        "/v1/subscriptions",
        headers=admin.headers,
        json={"user_id": str(user.user_id), "plan_id": "pro", "status": "active", "start_date": "2026-01-01"},
    )
    assert r.status_code == 201
    business = (await client.post("/v1/businesses", headers=h, json={"name": "Acme"})).json()
    for kind in ("natal", "transit"):
        r = await client.post(
            f"/v1/businesses/{business['business_id']}/analyses", headers=h, json={"analysis_type": kind}
        )
        assert r.status_code == 201
    sections = [{"title": f"S{i}", "content": "...", "order": i} for i in range(3)]
    r = await client.post(
        "/v1/reports",
        headers=h,
        json={"report_type": "m", "title": "T", "business_id": business["business_id"], "sections": sections},
    )
    assert r.status_code == 201
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    r = await client.post(
        "/v1/scheduled-notifications", headers=h, json={"title": "T", "body": "B", "scheduled_time": when}
    )
    assert r.status_code == 201
    await conn.execute(
        "INSERT INTO notifications (user_id, title, body, type) VALUES ($1, 'T', 'B', 'info')", user.user_id
    )
    # Experiment assignment and analytics events (written by other domains; inserted directly here).
    test_id = await conn.fetchval(
        "INSERT INTO ab_tests (name, start_date) VALUES ($1, CURRENT_DATE) RETURNING test_id",
        f"t-{user.user_id}",
    )
    variant_id = await conn.fetchval(
        "INSERT INTO ab_test_variants (test_id, name, traffic_percentage) VALUES ($1, 'control', 100) RETURNING variant_id",
        test_id,
    )
    await conn.execute(
        "INSERT INTO ab_test_assignments (test_id, variant_id, user_id) VALUES ($1, $2, $3)",
        test_id,
        variant_id,
        user.user_id,
    )
    for days in (0, 40):  # two partitions
        await conn.execute(
            """INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp")
               VALUES ($1, $2, 'opened', 'app', (now() AT TIME ZONE 'UTC') - make_interval(days => $3))""",
            uuid.uuid4(),
            user.user_id,
            days,
        )


async def _owned_rows(
    conn: asyncpg.Connection, user_id: uuid.UUID, parents: dict[str, list[Any]]
) -> dict[str, int]:
    """How many rows of each owned table belong to the user (children found through ``parents``)."""
    args = (user_id, parents["businesses"], parents["reports"])
    counts = {}
    for table, sql in OWNED.items():
        used = [a for i, a in enumerate(args, start=1) if f"${i}" in sql]
        sql = sql.replace("$2", "$1").replace("$3", "$1")
        counts[table] = len(await conn.fetch(sql, *used))
    return counts


async def _parents(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, list[Any]]:
    return {
        "businesses": [
            r[0] for r in await conn.fetch("SELECT business_id FROM businesses WHERE user_id = $1", user_id)
        ],
        "reports": [
            r[0] for r in await conn.fetch("SELECT report_id FROM reports WHERE user_id = $1", user_id)
        ],
    }


async def test_erasure_removes_everything_owned_and_unlinks_events(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, admin: Actor
) -> None:
    alice = await register_and_login(client)
    bob = await register_and_login(client)
    await _give_everything(client, conn, alice, admin)
    await _give_everything(client, conn, bob, admin)
    alice_parents = await _parents(conn, alice.user_id)
    alice_before = await _owned_rows(conn, alice.user_id, alice_parents)
    bob_before = await _owned_rows(conn, bob.user_id, await _parents(conn, bob.user_id))
    assert all(n >= 1 for n in alice_before.values()), alice_before
    alice_events = [
        r[0]
        for r in await conn.fetch("SELECT event_id FROM analytics_events WHERE user_id = $1", alice.user_id)
    ]
    assert len(alice_events) == 2

    r = await client.delete("/v1/users/me", headers=alice.headers)
    assert r.status_code == 204

    after = await _owned_rows(conn, alice.user_id, alice_parents)
    assert after == dict.fromkeys(OWNED, 0), after
    # Children are gone too, not merely unreachable through the user.
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM business_analyses a LEFT JOIN businesses b USING (business_id) WHERE b.business_id IS NULL"
        )
        == 0
    )
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM report_sections s LEFT JOIN reports r USING (report_id) WHERE r.report_id IS NULL"
        )
        == 0
    )
    # Events are kept, unlinked.
    rows = await conn.fetch(
        "SELECT event_id, user_id FROM analytics_events WHERE event_id = ANY($1::uuid[])", alice_events
    )
    assert len(rows) == 2
    assert all(r["user_id"] is None for r in rows)
    # Bob is untouched.
    assert await _owned_rows(conn, bob.user_id, await _parents(conn, bob.user_id)) == bob_before
    assert await conn.fetchval("SELECT count(*) FROM analytics_events WHERE user_id = $1", bob.user_id) == 2
    # The erasure is audited, without personal data beyond the id.
    audit = await conn.fetch("SELECT * FROM audit_log WHERE action = 'account_erased'")
    assert len(audit) == 1
    assert audit[0]["subject_id"] == str(alice.user_id)
    assert audit[0]["actor_user_id"] == alice.user_id
    assert json.loads(audit[0]["details"])["events_unlinked"] == 2
    assert alice.email not in str(dict(audit[0]))
    # The account is gone: its token no longer works and its credentials do not log in.
    assert (await client.get("/v1/users/me", headers=alice.headers)).status_code == 401
    r = await client.post("/v1/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert r.status_code == 401
    # The email can be registered again, as a new account.
    again = await register_and_login(client, email=alice.email.upper())
    assert again.user_id != alice.user_id
