"""The subscriptions API: CRUD, the catalogue, validation, secrets shown once and stored encrypted."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from integrations.catalogue import CATALOGUE
from tests.integration.core.conftest import Actor, make_user
from tests.integration.integrations.conftest import subscribe

Client = AsyncTestClient[Any]


async def test_create_read_update_delete(hooks: Client, admin: Actor, conn: asyncpg.Connection) -> None:
    created = await subscribe(hooks, admin, "https://hooks.example.com/in", event_type="experiment.*")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) >= 6 + 32
    hook_id = created["webhook_id"]
    # Stored encrypted, never in clear.
    stored = await conn.fetchval("SELECT secret FROM webhooks WHERE webhook_id = $1", created["webhook_id"])
    assert secret not in stored
    assert secret.removeprefix("whsec_") not in stored
    r = await hooks.get(f"/v1/webhooks/{hook_id}", headers=admin.headers)
    assert r.status_code == 200
    assert "secret" not in r.json()
    r = await hooks.get("/v1/webhooks?client_id=acme", headers=admin.headers)
    assert [w["webhook_id"] for w in r.json()["items"]] == [hook_id]
    assert "secret" not in r.text
    assert r.json()["next_cursor"] is None
    r = await hooks.patch(
        f"/v1/webhooks/{hook_id}", json={"status": "disabled", "description": "x"}, headers=admin.headers
    )
    assert r.status_code == 200
    assert r.json()["status"] == "disabled"
    r = await hooks.post(f"/v1/webhooks/{hook_id}/rotate-secret", headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["secret"] not in (secret, None)
    assert (await hooks.delete(f"/v1/webhooks/{hook_id}", headers=admin.headers)).status_code == 204
    assert (await hooks.get(f"/v1/webhooks/{hook_id}", headers=admin.headers)).status_code == 404


async def test_pagination(hooks: Client, admin: Actor) -> None:
    ids = {(await subscribe(hooks, admin, f"https://h{i}.example.com/"))["webhook_id"] for i in range(5)}
    seen, cursor = [], None
    while True:
        r = await hooks.get(
            "/v1/webhooks",
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=admin.headers,
        )
        seen += [w["webhook_id"] for w in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert set(seen) == ids


async def test_unknown_event_type_is_422_listing_the_catalogue(hooks: Client, admin: Actor) -> None:
    for bad in ("user.created", "nope.*", "experiment", "**"):
        r = await hooks.post(
            "/v1/webhooks",
            json={"client_id": "c", "event_type": bad, "target_url": "https://e.example.com/"},
            headers=admin.headers,
        )
        assert r.status_code == 422, (bad, r.text)
        body = r.json()
        assert body["code"] == "validation_error"
        assert body["details"][0]["field"] == "body.event_type"
        assert all(name in body["details"][0]["message"] for name in CATALOGUE)


async def test_target_url_rules(hooks: Client, admin: Actor) -> None:
    for url in (
        "ftp://e.example.com/",
        "https://user:pw@e.example.com/",
        "https:///nohost",
        "http://10.0.0.1/",
    ):
        r = await hooks.post(
            "/v1/webhooks",
            json={"client_id": "c", "event_type": "*", "target_url": url},
            headers=admin.headers,
        )
        assert r.status_code == 422, (url, r.text)
        assert r.json()["details"][0]["field"] == "body.target_url"


async def test_event_types_catalogue(hooks: Client, admin: Actor) -> None:
    r = await hooks.get("/v1/webhooks/event-types", headers=admin.headers)
    assert r.status_code == 200
    items = {i["name"]: i for i in r.json()["items"]}
    assert set(items) == set(CATALOGUE)
    assert items["export.completed"]["schema"]["properties"]["data"]["properties"]["export_id"]


async def test_admin_only(hooks: Client, admin: Actor, conn: asyncpg.Connection, settings: Any) -> None:
    user = await make_user(conn, settings)
    assert (await hooks.get("/v1/webhooks", headers=user.headers)).status_code == 403
    assert (await hooks.get("/v1/webhooks")).status_code == 401
