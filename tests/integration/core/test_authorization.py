"""The authorization matrix: user B against every one of user A's resources, on every route and method.

Every attempt answers 404 (never revealing that the id exists) and changes nothing; admins may read
everything but change only what admin routes allow.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.integration.core.conftest import Actor

# Routes of the core API addressed by an id, and the body each write sends (valid, so that only
# ownership can be the reason for refusal).
ID_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/businesses/{business_id}", None),
    ("PATCH", "/v1/businesses/{business_id}", {"name": "Hijacked"}),
    ("DELETE", "/v1/businesses/{business_id}", None),
    ("GET", "/v1/businesses/{business_id}/analyses", None),
    ("POST", "/v1/businesses/{business_id}/analyses", {"analysis_type": "natal"}),
    ("GET", "/v1/reports/{report_id}", None),
    ("PATCH", "/v1/reports/{report_id}", {"title": "Hijacked", "sections": []}),
    ("DELETE", "/v1/reports/{report_id}", None),
    ("GET", "/v1/users/me/devices/{device_id}", None),
    ("PATCH", "/v1/users/me/devices/{device_id}", {"active": False}),
    ("DELETE", "/v1/users/me/devices/{device_id}", None),
    ("GET", "/v1/users/me/subscriptions/{subscription_id}", None),
    ("GET", "/v1/subscriptions/{subscription_id}", None),
    ("PATCH", "/v1/subscriptions/{subscription_id}", {"status": "cancelled"}),
    ("GET", "/v1/users/{user_id}", None),
    ("PATCH", "/v1/users/{user_id}", {"role": "admin"}),
    ("GET", "/v1/notifications/{notification_id}", None),
    ("POST", "/v1/notifications/{notification_id}/read", None),
    ("GET", "/v1/scheduled-notifications/{schedule_id}", None),
    ("POST", "/v1/scheduled-notifications/{schedule_id}/cancel", None),
    ("DELETE", "/v1/scheduled-notifications/{schedule_id}", None),
]

# Routes that name another user's resource in the body or query rather than the path.
REFERENCE_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/reports", {"report_type": "monthly", "title": "Mine", "business_id": "{business_id}"}),
    ("GET", "/v1/businesses?user_id={user_id}", None),
    ("GET", "/v1/reports?user_id={user_id}", None),
    ("GET", "/v1/notifications?user_id={user_id}", None),
    ("GET", "/v1/scheduled-notifications?user_id={user_id}", None),
    ("GET", "/v1/subscriptions?user_id={user_id}", None),
]


async def _owned_resources(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, owner: Actor, admin: Actor
) -> dict[str, str]:
    """One of every resource kind, owned by ``owner``, created through the API where it can be."""
    h = owner.headers
    business = (await client.post("/v1/businesses", headers=h, json={"name": "Acme"})).json()
    await client.post(
        f"/v1/businesses/{business['business_id']}/analyses", headers=h, json={"analysis_type": "natal"}
    )
    report = (
        await client.post(
            "/v1/reports",
            headers=h,
            json={
                "report_type": "monthly",
                "title": "November",
                "business_id": business["business_id"],
                "sections": [{"title": "Intro", "content": "...", "order": 1}],
            },
        )
    ).json()
    device = (
        await client.post(
            "/v1/users/me/devices",
            headers=h,
            json={"device_token": f"tok-{owner.user_id}", "platform": "ios"},
        )
    ).json()
    subscription = (
        await client.post(
            "/v1/subscriptions",
            headers=admin.headers,
            json={
                "user_id": str(owner.user_id),
                "plan_id": "pro",
                "status": "active",
                "start_date": "2026-01-01",
            },
        )
    ).json()
    schedule = (
        await client.post(
            "/v1/scheduled-notifications",
            headers=h,
            json={
                "title": "Later",
                "body": "...",
                "scheduled_time": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
            },
        )
    ).json()
    notification_id = await conn.fetchval(
        """INSERT INTO notifications (user_id, title, body, type) VALUES ($1, 'Hello', 'World', 'info')
           RETURNING notification_id""",
        owner.user_id,
    )
    return {
        "user_id": str(owner.user_id),
        "business_id": business["business_id"],
        "report_id": report["report_id"],
        "device_id": device["device_id"],
        "subscription_id": subscription["subscription_id"],
        "schedule_id": schedule["schedule_id"],
        "notification_id": str(notification_id),
    }


async def _snapshot(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, list[Any]]:
    """Every row the user owns, for before/after comparison."""
    tables = {
        "users": "SELECT * FROM users WHERE user_id = $1",
        "businesses": "SELECT * FROM businesses WHERE user_id = $1",
        "business_analyses": """SELECT a.* FROM business_analyses a JOIN businesses b USING (business_id)
                                WHERE b.user_id = $1""",
        "reports": "SELECT * FROM reports WHERE user_id = $1",
        "report_sections": """SELECT s.* FROM report_sections s JOIN reports r USING (report_id)
                              WHERE r.user_id = $1""",
        "user_devices": "SELECT * FROM user_devices WHERE user_id = $1",
        "subscriptions": "SELECT * FROM subscriptions WHERE user_id = $1",
        "notifications": "SELECT * FROM notifications WHERE user_id = $1",
        "scheduled_notifications": "SELECT * FROM scheduled_notifications WHERE user_id = $1",
        "user_preferences": "SELECT * FROM user_preferences WHERE user_id = $1",
    }
    return {name: [dict(r) for r in await conn.fetch(sql, user_id)] for name, sql in tables.items()}


def _fill(template: str, ids: dict[str, str]) -> str:
    for key, value in ids.items():
        template = template.replace("{" + key + "}", value)
    return template


async def _send(
    client: AsyncTestClient[Any], method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> Any:
    return await client.request(method, path, headers=headers, json=body)


async def test_every_id_route_is_in_the_matrix(client: AsyncTestClient[Any]) -> None:
    """A new route taking an id cannot be added without being checked here."""
    covered = {(m, p) for m, p, _ in ID_ROUTES}
    found = set()
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", []):
            module = getattr(handler.fn, "__module__", "")
            # /schema/{path} is the documentation's JSON 404, not a resource.
            if (
                not module.startswith("core_api.")
                or "{" not in route.path
                or route.path.startswith("/schema/")
            ):
                continue
            for method in handler.http_methods:
                template = route.path.replace(":uuid}", "}")
                found.add((method, template))
    assert found == covered


async def test_other_users_resources_are_not_found_on_every_route(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, alice: Actor, bob: Actor, admin: Actor
) -> None:
    ids = await _owned_resources(client, conn, alice, admin)
    await _owned_resources(client, conn, bob, admin)  # Bob has resources of his own too
    before = await _snapshot(conn, alice.user_id)

    failures = []
    for method, template, body in [*ID_ROUTES, *REFERENCE_ROUTES]:
        path = _fill(template, ids)
        payload = {k: _fill(v, ids) if isinstance(v, str) else v for k, v in body.items()} if body else body
        r = await _send(client, method, path, payload, bob.headers)
        if r.status_code != 404 or "code" not in r.json():
            failures.append(f"{method} {template}: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)
    # Pointing one's own report at someone else's business is refused too.
    bobs_report = (await client.get("/v1/reports", headers=bob.headers)).json()["items"][0]
    r = await client.patch(
        f"/v1/reports/{bobs_report['report_id']}",
        headers=bob.headers,
        json={"business_id": ids["business_id"]},
    )
    assert r.status_code == 404

    assert await _snapshot(conn, alice.user_id) == before


async def test_lists_and_counters_show_only_the_callers_rows(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, alice: Actor, bob: Actor, admin: Actor
) -> None:
    alice_ids = await _owned_resources(client, conn, alice, admin)
    for path in (
        "/v1/businesses",
        "/v1/reports",
        "/v1/users/me/devices",
        "/v1/users/me/subscriptions",
        "/v1/subscriptions",
        "/v1/notifications",
        "/v1/scheduled-notifications",
    ):
        r = await client.get(path, headers=bob.headers)
        assert r.status_code == 200, path
        assert r.json() == {"items": [], "next_cursor": None}, path
    assert (await client.get("/v1/notifications/unread-count", headers=bob.headers)).json() == {"unread": 0}
    assert (await client.post("/v1/notifications/read-all", headers=bob.headers)).json() == {"updated": 0}
    assert (
        await conn.fetchval(
            "SELECT read FROM notifications WHERE notification_id = $1",
            uuid.UUID(alice_ids["notification_id"]),
        )
        is False
    )
    r = await client.get("/v1/users/me/preferences", headers=bob.headers)
    assert r.json()["user_id"] == str(bob.user_id)
    r = await client.get(f"/v1/businesses/{alice_ids['business_id']}/analyses", headers=bob.headers)
    assert r.status_code == 404
    # Admin-only routes refuse a non-admin outright.
    assert (await client.get("/v1/users", headers=bob.headers)).status_code == 403
    r = await client.post(
        "/v1/subscriptions",
        headers=bob.headers,
        json={"user_id": str(bob.user_id), "plan_id": "pro", "status": "active", "start_date": "2026-01-01"},
    )
    assert r.status_code == 403
    own_sub = (await client.get("/v1/users/me/subscriptions", headers=alice.headers)).json()["items"][0]
    r = await client.patch(
        f"/v1/subscriptions/{own_sub['subscription_id']}", headers=alice.headers, json={"status": "cancelled"}
    )
    assert r.status_code == 403  # visible to its owner, but only admins change subscriptions


@pytest.mark.parametrize("anonymous", [{}, {"Authorization": "Bearer not-a-token"}])
async def test_every_route_needs_a_valid_token(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    alice: Actor,
    admin: Actor,
    anonymous: dict[str, str],
) -> None:
    ids = await _owned_resources(client, conn, alice, admin)
    for method, template, body in ID_ROUTES:
        r = await _send(client, method, _fill(template, ids), body, anonymous)
        assert r.status_code == 401, (method, template, r.status_code)
        assert r.json()["code"] == "unauthorized"


async def test_admin_reads_everything_but_changes_only_through_admin_routes(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, alice: Actor, admin: Actor
) -> None:
    ids = await _owned_resources(client, conn, alice, admin)
    before = await _snapshot(conn, alice.user_id)
    for method, template, _ in ID_ROUTES:
        if method != "GET" or template.startswith("/v1/users/me/"):
            continue
        r = await client.get(_fill(template, ids), headers=admin.headers)
        assert r.status_code == 200, (template, r.text)
    for path in (
        "/v1/businesses",
        "/v1/reports",
        "/v1/notifications",
        "/v1/scheduled-notifications",
        "/v1/subscriptions",
    ):
        r = await client.get(f"{path}?user_id={alice.user_id}", headers=admin.headers)
        assert r.status_code == 200, path
        assert len(r.json()["items"]) == 1, path
    # The owner's own routes stay the owner's: an admin cannot edit Alice's business or report.
    for method, template, body in ID_ROUTES:
        if method == "GET" or "/users/" in template or "/subscriptions/" in template:
            continue
        r = await _send(client, method, _fill(template, ids), body, admin.headers)
        assert r.status_code == 404, (method, template, r.status_code)
    assert await _snapshot(conn, alice.user_id) == before
