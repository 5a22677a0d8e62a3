"""Delivery: Standard Webhooks signatures verified by the reference library, retries with the same
webhook-id, 410, the 5-day disable, rotation, manual retry, and the transactional outbox."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from integrations.dispatcher import Dispatcher
from kernel import events
from tests.integration.core.conftest import Actor
from tests.integration.integrations.conftest import subscribe
from tests.integration.integrations.receiver import Receiver

Client = AsyncTestClient[Any]


async def drain(dispatcher: Dispatcher, conn: asyncpg.Connection, timeout: float = 20.0) -> None:
    """Run the dispatcher until no delivery is pending or in flight."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        await dispatcher.run_once()
        waiting = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'processing')"
        )
        outbox = await conn.fetchval("SELECT count(*) FROM event_outbox")
        if waiting == 0 and outbox == 0 and not dispatcher._inflight:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries still pending")


async def emit(conn: asyncpg.Connection, event_type: str, data: dict[str, Any]) -> uuid.UUID:
    async with conn.transaction():
        return await events.emit(conn, event_type, data)


async def test_500_500_200_three_attempts_same_id_every_timestamp(
    hooks: Client, admin: Actor, receiver: Receiver, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    hook = await subscribe(hooks, admin, receiver.url, event_type="export.*")
    receiver.secrets.append(hook["secret"])
    receiver.script.extend([500, 500, 200])
    event_id = await emit(conn, "export.completed", {"export_id": uuid.uuid4(), "rows": 3})
    await drain(dispatcher, conn)
    got = receiver.wait_for(3)
    assert len(got) == 3
    assert all(r.verified for r in got)
    assert {r.headers["webhook-id"] for r in got} == {f"msg_{event_id}"}
    assert got[0].payload["type"] == "export.completed"
    assert got[0].payload["data"]["rows"] == 3
    row = await conn.fetchrow("SELECT * FROM webhook_deliveries")
    assert row["status"] == "delivered"
    assert row["attempts"] == 3
    assert row["response_code"] == 200
    for column in ("queued_at", "processing_started_at", "delivered_at", "failed_at"):
        assert row[column] is not None, column
    assert row["queued_at"] <= row["processing_started_at"] <= row["failed_at"] <= row["delivered_at"]
    r = await hooks.get(
        f"/v1/webhooks/{hook['webhook_id']}/deliveries?status=delivered", headers=admin.headers
    )
    assert [d["attempts"] for d in r.json()["items"]] == [3]
