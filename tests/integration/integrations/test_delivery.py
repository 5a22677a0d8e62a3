"""Delivery: Standard Webhooks signatures verified by the reference library, retries with the same
webhook-id, 410, the 5-day disable, rotation, manual retry, and the transactional outbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from integrations.dispatcher import Dispatcher
from kernel import events
from tests.integration.core.conftest import Actor
from tests.integration.integrations.conftest import hook_config, subscribe
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


async def test_410_disables_the_endpoint_and_tells_the_clients_other_endpoints(
    hooks: Client, admin: Actor, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    gone, other, stranger = Receiver().start(), Receiver().start(), Receiver().start()
    try:
        hook = await subscribe(hooks, admin, gone.url, event_type="report.created")
        watcher = await subscribe(hooks, admin, other.url, event_type="webhook.*")
        await subscribe(hooks, admin, stranger.url, client_id="someone-else", event_type="*")
        other.secrets.append(watcher["secret"])
        gone.script.append(410)
        await emit(conn, "report.created", {"report_id": uuid.uuid4()})
        await drain(dispatcher, conn)
        assert len(gone.received) == 1
        assert (
            await conn.fetchval("SELECT status FROM webhooks WHERE webhook_id = $1::uuid", hook["webhook_id"])
            == "disabled"
        )
        row = await conn.fetchrow(
            "SELECT status, response_code FROM webhook_deliveries WHERE webhook_id = $1::uuid",
            hook["webhook_id"],
        )
        assert row is not None, await conn.fetch(
            "SELECT webhook_id, status, response_code FROM webhook_deliveries"
        )
        assert tuple(row) == ("failed", 410)
        # webhook.disabled went to the same client's other endpoint only.
        assert [r.payload["type"] for r in other.received if r.verified] == ["webhook.disabled"]
        assert other.received[0].payload["data"]["webhook_id"] == hook["webhook_id"]
        assert [json.loads(r.body)["type"] for r in stranger.received] == ["report.created"]
        # A disabled endpoint gets nothing more.
        await emit(conn, "report.created", {"report_id": uuid.uuid4()})
        await drain(dispatcher, conn)
        assert len(gone.received) == 1
    finally:
        for r in (gone, other, stranger):
            r.stop()


async def test_failing_past_the_disable_period_disables(
    hooks: Client, admin: Actor, receiver: Receiver, settings: Any, conn: asyncpg.Connection
) -> None:
    from integrations.config import DeliveryNumbers
    from kernel.crypto import SecretBox, secret_key
    from kernel.db import Database

    hook = await subscribe(hooks, admin, receiver.url)
    receiver.default = 503
    db = Database(settings.database_url, max_size=2)
    await db.open()
    config = hook_config(disable_after_seconds=0.3)
    d = Dispatcher(db, config, SecretBox(secret_key(settings.data_dir)))
    try:
        await emit(conn, "report.created", {"report_id": uuid.uuid4()})
        await drain(d, conn)
        await emit(conn, "report.created", {"report_id": uuid.uuid4()})
        await drain(d, conn)
    finally:
        await d.stop()
        await db.close()
    assert isinstance(config.numbers, DeliveryNumbers)
    hook_row = await conn.fetchrow("SELECT status, failing_since FROM webhooks")
    assert hook_row["status"] == "disabled"
    rows = await conn.fetch("SELECT status, attempts, response_code, response_body FROM webhook_deliveries")
    assert {r["status"] for r in rows} == {"failed"}
    assert rows[0]["response_code"] == 503
    assert rows[0]["response_body"] == "status 503"
    assert hook["secret"] not in str(await conn.fetch("SELECT * FROM webhook_deliveries"))


async def test_rotation_signs_with_both_secrets(
    hooks: Client, admin: Actor, receiver: Receiver, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    hook = await subscribe(hooks, admin, receiver.url)
    r = await hooks.post(f"/v1/webhooks/{hook['webhook_id']}/rotate-secret", headers=admin.headers)
    new_secret = r.json()["secret"]
    await emit(conn, "report.created", {"report_id": uuid.uuid4()})
    await drain(dispatcher, conn)
    (got,) = receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], new_secret):
        receiver.secrets[:] = [secret]
        assert receiver.verify(got.headers, got.body)[0]
    # Once the overlap has passed, only the new secret signs.
    await conn.execute("UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second'")
    await emit(conn, "report.created", {"report_id": uuid.uuid4()})
    await drain(dispatcher, conn)
    last = receiver.wait_for(2)[-1]
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    receiver.secrets[:] = [hook["secret"]]
    assert not receiver.verify(last.headers, last.body)[0]


async def test_test_event_and_manual_retry_keep_the_webhook_id(
    hooks: Client, admin: Actor, receiver: Receiver, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    hook = await subscribe(hooks, admin, receiver.url, event_type="user.registered")
    receiver.secrets.append(hook["secret"])
    receiver.script.extend([500, 500, 500])
    r = await hooks.post(f"/v1/webhooks/{hook['webhook_id']}/test", headers=admin.headers)
    assert r.status_code == 202
    delivery_id = r.json()["delivery_id"]
    await drain(dispatcher, conn)
    r = await hooks.get(f"/v1/webhooks/{hook['webhook_id']}/deliveries?status=failed", headers=admin.headers)
    (failed,) = r.json()["items"]
    assert failed["attempts"] == 3
    assert failed["response_code"] == 500
    r = await hooks.post(
        f"/v1/webhooks/{hook['webhook_id']}/deliveries/{delivery_id}/retry", headers=admin.headers
    )
    assert r.status_code == 202, r.text
    await drain(dispatcher, conn)
    got = receiver.wait_for(4)
    assert len({g.headers["webhook-id"] for g in got}) == 1
    assert got[-1].payload["type"] == "webhook.test"
    assert got[-1].verified
    r = await hooks.get(
        f"/v1/webhooks/{hook['webhook_id']}/deliveries/{delivery_id}/retry", headers=admin.headers
    )
    assert r.status_code == 405
    r = await hooks.post(
        f"/v1/webhooks/{hook['webhook_id']}/deliveries/{uuid.uuid4()}/retry", headers=admin.headers
    )
    assert r.status_code == 404


async def test_stats_show_queue_and_outcomes(
    hooks: Client, admin: Actor, receiver: Receiver, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    await subscribe(hooks, admin, receiver.url)
    receiver.script.extend([500, 200])
    await emit(conn, "report.created", {"report_id": uuid.uuid4()})
    r = await hooks.get("/v1/webhooks/stats", headers=admin.headers)
    assert r.json()["outbox_events"] == 1
    await drain(dispatcher, conn)
    r = await hooks.get("/v1/webhooks/stats", headers=admin.headers)
    body = r.json()
    assert (body["pending"], body["processing"], body["outbox_events"], body["process"]) == (0, 0, 0, None)
    snapshot = dispatcher.metrics.snapshot()
    assert snapshot["outcomes"] == {"retrying": 1, "delivered": 1}
    assert 0 < snapshot["attempt_seconds_p99"] < 2
    assert 0 <= snapshot["first_attempt_wait_seconds_p99"] < 2


async def test_a_secret_sealed_under_another_key_fails_the_attempt_without_sending(
    hooks: Client, admin: Actor, receiver: Receiver, dispatcher: Dispatcher, conn: asyncpg.Connection
) -> None:
    from kernel.crypto import SecretBox

    await subscribe(hooks, admin, receiver.url)
    await conn.execute("UPDATE webhooks SET secret = $1", SecretBox("another key").seal("whsec_AAAA"))
    await emit(conn, "report.created", {"report_id": uuid.uuid4()})
    await drain(dispatcher, conn)
    row = await conn.fetchrow("SELECT status, attempts, error_message FROM webhook_deliveries")
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert "cannot be decrypted" in row["error_message"]
    assert receiver.received == []
