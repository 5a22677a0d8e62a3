"""The domains emit their events in the transaction of the change: committed changes reach the
receiver, rolled-back ones emit nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from integrations.dispatcher import Dispatcher
from kernel import events
from tests.integration.core.conftest import Actor
from tests.integration.integrations.conftest import subscribe
from tests.integration.integrations.receiver import Receiver
from tests.integration.integrations.test_delivery import drain

Client = AsyncTestClient[Any]


async def _types(receiver: Receiver) -> list[str]:
    return [r.payload["type"] for r in receiver.received if r.verified]


async def test_rolled_back_change_emits_nothing(
    hooks: Client, admin: Actor, receiver: Receiver, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    hook = await subscribe(hooks, admin, receiver.url)
    receiver.secrets.append(hook["secret"])

    class Boom(Exception):
        pass

    async def change_then_fail() -> None:
        async with conn.transaction():
            await events.emit(conn, "report.created", {"report_id": "x"})
            raise Boom

    with pytest.raises(Boom):
        await change_then_fail()
    # A domain change that fails after its event was recorded: the registration of a taken email.
    body = {"email": admin.email, "password": "a long enough password 1", "first_name": "A", "last_name": "B"}
    assert (await hooks.post("/v1/auth/register", json=body)).status_code == 409
    await drain(dispatcher, conn)
    await asyncio.sleep(0.3)
    assert receiver.received == []
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_domain_events_arrive(
    hooks: Client, admin: Actor, receiver: Receiver, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    hook = await subscribe(hooks, admin, receiver.url)
    receiver.secrets.append(hook["secret"])
    body = {
        "email": "new.user@example.com",
        "password": "a long enough password 1",
        "first_name": "A",
        "last_name": "B",
    }
    r = await hooks.post("/v1/auth/register", json=body)
    assert r.status_code == 201, r.text
    user_id = r.json()["user_id"]
    r = await hooks.post("/v1/reports", json={"report_type": "natal", "title": "T"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    today = dt.datetime.now(dt.UTC).date().isoformat()
    experiment = {
        "name": "hooked",
        "start_date": today,
        "variants": [
            {"name": "a", "traffic_percentage": 50},
            {"name": "b", "traffic_percentage": 50},
        ],
    }
    assert (await hooks.post("/v1/experiments", json=experiment, headers=admin.headers)).status_code == 201
    r = await hooks.patch("/v1/experiments/hooked", json={"status": "paused"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await hooks.post("/v1/exports", json={"from": today, "to": today}, headers=admin.headers)
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    for _ in range(100):
        if await conn.fetchval("SELECT status FROM exports WHERE export_id = $1::uuid", export_id) == "done":
            break
        await asyncio.sleep(0.1)
    await drain(dispatcher, conn)
    status = await conn.fetchval("SELECT status || coalesce(error, '') FROM exports")
    expected = ["experiment.created", "experiment.status_changed", "export.completed"]
    expected += ["report.created", "user.registered"]
    assert sorted(await _types(receiver)) == expected, status
    got = {p["type"]: p["data"] for p in (x.payload for x in receiver.received if x.verified)}
    assert got["user.registered"]["user_id"] == user_id
    assert got["report.created"]["report_type"] == "natal"
    assert got["experiment.created"]["name"] == "hooked"
    assert got["experiment.status_changed"]["previous_status"] == "active"
    assert got["experiment.status_changed"]["status"] == "paused"
    assert got["export.completed"]["export_id"] == export_id


async def test_erasure_and_day_finalisation_emit_once(
    hooks: Client, admin: Actor, conn: asyncpg.Connection
) -> None:
    import aggregation

    body = {
        "email": "gone@example.com",
        "password": "a long enough password 1",
        "first_name": "A",
        "last_name": "B",
    }
    user_id = (await hooks.post("/v1/auth/register", json=body)).json()["user_id"]
    r = await hooks.post("/v1/auth/login", json={"email": body["email"], "password": body["password"]})
    token = r.json()["access_token"]
    assert (
        await hooks.delete("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 204
    day = dt.date(2020, 1, 1)
    for _ in range(2):  # the second finalisation of the same day announces nothing
        async with conn.transaction():
            assert (await aggregation.finalise_day(conn, day))[2]
    rows = await conn.fetch("SELECT event_type, payload FROM event_outbox ORDER BY event_id")
    got = [(r["event_type"], json.loads(r["payload"])["data"]) for r in rows]
    assert got == [
        ("user.registered", {"user_id": user_id, "role": "user"}),
        ("user.erased", {"user_id": user_id}),
        ("aggregation.day_finalised", {"day": "2020-01-01"}),
    ]
