"""Conversions: first one counts, idempotent; only assigned users convert."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from tests.integration.experiments.conftest import Actors, Client, create, make_user


async def _convert(
    client: Client, headers: dict[str, str], user_id: object, name: str = "checkout"
) -> dict[str, object]:
    r = await client.post(
        f"/v1/experiments/{name}/conversions", json={"user_id": str(user_id)}, headers=headers
    )
    return {"status": r.status_code, **r.json()} if r.status_code != 200 else {"status": 200, **r.json()}


async def test_first_conversion_counts(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(client, actors.admin)
    assigned = (
        await client.post(
            "/v1/experiments/checkout/assignments", json={"user_id": str(actors.user_id)}, headers=actors.app
        )
    ).json()
    first = await _convert(client, actors.user, actors.user_id)
    assert first["status"] == 200
    assert (first["new"], first["variant"], first["experiment"]) == (True, assigned["variant"], "checkout")
    second = await _convert(client, actors.app, actors.user_id)
    assert second == {**first, "new": False}
    row = await conn.fetchrow("SELECT converted, converted_at FROM ab_test_assignments")
    assert row["converted"] is True
    assert (
        row["converted_at"].replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z") == first["converted_at"]
    )


async def test_conversion_errors(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(client, actors.admin)
    never = await make_user(conn)
    cases = [
        (actors.app, never, "checkout", 409, "not_assigned"),
        (actors.app, uuid.uuid4(), "checkout", 404, "user_not_found"),
        (actors.app, actors.user_id, "nope", 404, "experiment_not_found"),
        (actors.app, "nope", "checkout", 422, "validation_error"),
        (actors.user, never, "checkout", 404, "user_not_found"),  # someone else's id
        ({}, never, "checkout", 401, "unauthorized"),
    ]
    for headers, user_id, name, status, code in cases:
        got = await _convert(client, headers, user_id, name)
        assert (got["status"], got["code"]) == (status, code), (user_id, name, got)

    await client.post(
        "/v1/experiments/checkout/assignments", json={"user_id": str(never)}, headers=actors.app
    )
    await client.patch("/v1/experiments/checkout", json={"status": "paused"}, headers=actors.admin)
    assert (await _convert(client, actors.app, never))["status"] == 200  # exposed users still convert
    await client.patch("/v1/experiments/checkout", json={"status": "completed"}, headers=actors.admin)
    got = await _convert(client, actors.app, never)
    assert (got["status"], got["code"]) == (409, "experiment_not_running")
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments WHERE converted") == 1


async def test_goal_events_convert_assignments(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    from experiments.jobs import convert_goal_events

    await create(client, actors.admin, goal_event="Order Completed")
    other = await make_user(conn)
    for u in (actors.user_id, other):
        await client.post(
            "/v1/experiments/checkout/assignments", json={"user_id": str(u)}, headers=actors.app
        )
    assigned_at = await conn.fetchval("SELECT min(assigned_at) FROM ab_test_assignments")
    events = [
        (actors.user_id, "Order Completed", assigned_at + dt.timedelta(minutes=5)),
        (actors.user_id, "Order Completed", assigned_at + dt.timedelta(minutes=9)),
        (other, "Order Completed", assigned_at - dt.timedelta(days=1)),  # before assignment: ignored
        (other, "Page Viewed", assigned_at + dt.timedelta(minutes=1)),  # not the goal
    ]
    for user_id, name, ts in events:
        await conn.execute(
            """INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp", created_at)
               VALUES ($1, $2, $3, 'test', $4, $4)""",
            uuid.uuid4(),
            user_id,
            name,
            ts,
        )
    async with conn.transaction():
        assert await convert_goal_events(conn) == 1
    row = await conn.fetchrow(
        "SELECT converted, converted_at FROM ab_test_assignments WHERE user_id = $1", actors.user_id
    )
    assert (row["converted"], row["converted_at"]) == (True, assigned_at + dt.timedelta(minutes=5))
    assert await conn.fetchval("SELECT converted FROM ab_test_assignments WHERE user_id = $1", other) is False
    async with conn.transaction():
        assert await convert_goal_events(conn) == 0  # idempotent
