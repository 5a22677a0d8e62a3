"""Experiment definitions: create, read, update; validation and roles."""

from __future__ import annotations

import asyncpg

from tests.integration.experiments.conftest import Actors, Client, create, definition


async def test_create_and_read(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    body = await create(
        client,
        actors.admin,
        variants=[
            {"name": "a", "traffic_percentage": 33.33, "description": "old"},
            {"name": "b", "traffic_percentage": "33.33"},
            {"name": "c", "traffic_percentage": 33.34},
        ],
        control="b",
        end_date="2999-12-31",
        goal_event="Order Completed",
    )
    assert body["name"] == "checkout"
    assert body["status"] == "active"
    assert body["running"] is True
    assert body["control"] == "b"
    assert body["phase"] == 1
    assert [(v["name"], v["traffic_percentage"], v["is_control"]) for v in body["variants"]] == [
        ("a", 33.33, False),
        ("b", 33.33, True),
        ("c", 33.34, False),
    ]
    rows = await conn.fetch(
        "SELECT name, position, traffic_percentage::text AS p FROM ab_test_variants ORDER BY position"
    )
    assert [(r["name"], r["position"], r["p"]) for r in rows] == [
        ("a", 0, "33.33"),
        ("b", 1, "33.33"),
        ("c", 2, "33.34"),
    ]
    assert await conn.fetchval("SELECT count(*) FROM ab_test_variant_weights WHERE phase = 1") == 3
    assert await conn.fetchval("SELECT action FROM audit_log") == "experiment_created"

    r = await client.get("/v1/experiments/checkout", headers=actors.admin)
    assert r.status_code == 200
    assert r.json() == body
    r = await client.get("/v1/experiments", headers=actors.admin)
    assert [e["name"] for e in r.json()["items"]] == ["checkout"]
    assert r.json()["next_cursor"] is None


async def test_the_experiment_list_is_paginated_by_name(client: Client, actors: Actors) -> None:
    for name in ("gamma", "alpha", "beta"):
        r = await client.post("/v1/experiments", json=definition(name), headers=actors.admin)
        assert r.status_code == 201, r.text
    r = await client.get("/v1/experiments?limit=2", headers=actors.admin)
    page = r.json()
    assert [e["name"] for e in page["items"]] == ["alpha", "beta"]
    r = await client.get(f"/v1/experiments?limit=2&cursor={page['next_cursor']}", headers=actors.admin)
    assert [e["name"] for e in r.json()["items"]] == ["gamma"]
    assert r.json()["next_cursor"] is None


async def test_control_defaults_to_first_variant(client: Client, actors: Actors) -> None:
    body = await create(client, actors.admin)
    assert body["control"] == "control"


INVALID_DEFINITIONS: list[tuple[dict[str, object], int, str]] = [
    (
        {
            "variants": [
                {"name": "a", "traffic_percentage": 50},
                {"name": "b", "traffic_percentage": 49.99},
            ]
        },
        422,
        "validation_error",
    ),
    (
        {
            "variants": [
                {"name": "a", "traffic_percentage": 50.005},
                {"name": "b", "traffic_percentage": 49.995},
            ]
        },
        422,
        "validation_error",
    ),
    (
        {
            "variants": [
                {"name": "a", "traffic_percentage": 150},
                {"name": "b", "traffic_percentage": -50},
            ]
        },
        422,
        "validation_error",
    ),
    ({"variants": [{"name": "a", "traffic_percentage": 100}]}, 422, "validation_error"),
    (
        {"variants": [{"name": "a", "traffic_percentage": 50}, {"name": "a", "traffic_percentage": 50}]},
        409,
        "duplicate_variant",
    ),
    ({"end_date": "2019-12-31"}, 422, "validation_error"),
    ({"control": "nope"}, 422, "validation_error"),
    ({"name": "has space"}, 422, "validation_error"),
    ({"name": "x" * 101}, 422, "validation_error"),
    ({"start_date": "yesterday"}, 422, "validation_error"),
    ({"surprise": 1}, 422, "validation_error"),
]


async def test_invalid_definitions(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    for overrides, status, code in INVALID_DEFINITIONS:
        r = await client.post("/v1/experiments", json=definition(**overrides), headers=actors.admin)  # type: ignore[arg-type]
        assert r.status_code == status, (overrides, r.text)
        assert r.json()["code"] == code
        assert r.json()["message"]
    assert await conn.fetchval("SELECT count(*) FROM ab_tests") == 0


async def test_duplicate_name_is_409(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(client, actors.admin)
    r = await client.post("/v1/experiments", json=definition(), headers=actors.admin)
    assert r.status_code == 409
    assert r.json()["code"] == "duplicate_experiment"
    assert await conn.fetchval("SELECT count(*) FROM ab_tests") == 1


async def test_oversized_body_is_413(client: Client, actors: Actors) -> None:
    r = await client.post("/v1/experiments", json=definition(description="x" * 100_000), headers=actors.admin)
    assert r.status_code == 413


async def test_roles(client: Client, actors: Actors) -> None:
    await create(client, actors.admin)
    for headers, status in ((actors.analyst, 403), (actors.user, 403), (actors.app, 401), ({}, 401)):
        assert (
            await client.post("/v1/experiments", json=definition("other"), headers=headers)
        ).status_code == status
        assert (await client.get("/v1/experiments", headers=headers)).status_code == status
        assert (await client.get("/v1/experiments/checkout", headers=headers)).status_code == status
        r = await client.patch("/v1/experiments/checkout", json={"status": "paused"}, headers=headers)
        assert r.status_code == status


async def test_unknown_experiment_is_404(client: Client, actors: Actors) -> None:
    for method, path in (
        ("GET", "/v1/experiments/nope"),
        ("PATCH", "/v1/experiments/nope"),
        ("GET", "/v1/experiments/nope/results"),
    ):
        r = await client.request(method, path, json={"status": "paused"}, headers=actors.admin)
        assert r.status_code == 404, (method, path)
        assert r.json()["code"] == "experiment_not_found"


async def test_patch_status_dates_description(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await create(client, actors.admin)
    r = await client.patch(
        "/v1/experiments/checkout",
        json={"status": "paused", "end_date": "2030-01-31", "description": None},
        headers=actors.admin,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["end_date"], body["description"], body["running"]) == (
        "paused",
        "2030-01-31",
        None,
        False,
    )
    assert body["phase"] == 1  # no traffic change

    r = await client.patch(
        "/v1/experiments/checkout", json={"end_date": None, "status": "active"}, headers=actors.admin
    )
    assert (r.json()["end_date"], r.json()["status"]) == (None, "active")
    r = await client.patch("/v1/experiments/checkout", json={"status": "completed"}, headers=actors.admin)
    assert r.json()["status"] == "completed"
    r = await client.patch("/v1/experiments/checkout", json={"status": "active"}, headers=actors.admin)
    assert r.status_code == 409
    r = await client.patch("/v1/experiments/checkout", json={"status": "deleted"}, headers=actors.admin)
    assert r.status_code == 422
    r = await client.patch("/v1/experiments/checkout", json={"end_date": "2019-01-01"}, headers=actors.admin)
    assert r.status_code == 422
    actions = await conn.fetch("SELECT action FROM audit_log ORDER BY created_at")
    assert [a["action"] for a in actions].count("experiment_updated") == 3


async def test_patch_traffic_starts_a_phase(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(client, actors.admin)
    new = [{"name": "control", "traffic_percentage": 20}, {"name": "green", "traffic_percentage": 80}]
    r = await client.patch("/v1/experiments/checkout", json={"variants": new}, headers=actors.admin)
    assert r.status_code == 200, r.text
    assert r.json()["phase"] == 2
    assert [v["traffic_percentage"] for v in r.json()["variants"]] == [20.0, 80.0]
    rows = await conn.fetch(
        """SELECT v.name, w.phase, w.traffic_percentage::text AS p FROM ab_test_variant_weights w
           JOIN ab_test_variants v USING (variant_id) ORDER BY w.phase, v.position"""
    )
    assert [(x["name"], x["phase"], x["p"]) for x in rows] == [
        ("control", 1, "50.00"),
        ("green", 1, "50.00"),
        ("control", 2, "20.00"),
        ("green", 2, "80.00"),
    ]
    # The same percentages again: no new phase.
    r = await client.patch("/v1/experiments/checkout", json={"variants": new}, headers=actors.admin)
    assert r.json()["phase"] == 2

    for bad, status in (
        ([{"name": "control", "traffic_percentage": 20}, {"name": "green", "traffic_percentage": 70}], 422),
        ([{"name": "control", "traffic_percentage": 20}, {"name": "blue", "traffic_percentage": 80}], 422),
        ([{"name": "control", "traffic_percentage": 100}], 422),
        ([{"name": "green", "traffic_percentage": 50}, {"name": "green", "traffic_percentage": 50}], 409),
    ):
        r = await client.patch("/v1/experiments/checkout", json={"variants": bad}, headers=actors.admin)
        assert r.status_code == status, (bad, r.text)
    assert await conn.fetchval("SELECT phase FROM ab_tests") == 2


async def test_non_finite_percentage_is_422(client: Client, actors: Actors) -> None:
    body = b'{"name": "x", "start_date": "2020-01-01", "variants": [{"name": "a", "traffic_percentage": 1e400}, {"name": "b", "traffic_percentage": 0}]}'
    r = await client.post(
        "/v1/experiments", content=body, headers={**actors.admin, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text


async def test_unreadable_bodies_are_4xx(client: Client, actors: Actors) -> None:
    for body in (
        b"{not json",
        b"",
        b"[]",
        b'"x"',
        '{"name": "\ud800"}'.encode("utf-8", "surrogatepass"),
        b"\xff\xfe",
    ):
        r = await client.post(
            "/v1/experiments", content=body, headers={**actors.admin, "Content-Type": "application/json"}
        )
        assert r.status_code in (400, 422), (body, r.text)
        assert set(r.json()) >= {"code", "message"}
