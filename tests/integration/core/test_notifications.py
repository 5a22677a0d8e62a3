"""The notifications inbox, scheduling, and exactly-once delivery by concurrent runners."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from core_api.notifications import jobs, service
from core_api.notifications.errors import ScheduleNotPendingError
from core_api.notifications.push import PushMessage
from kernel.auth import AuthUser
from kernel.db import Database
from tests.integration.core.conftest import Actor


class RecordingProvider:
    """A push provider that remembers what it was handed (and can be slow, or fail)."""

    def __init__(self, delay: float = 0.0, fail_for: set[str] | None = None) -> None:
        self.delay = delay
        self.fail_for = fail_for or set()
        self.sent: list[PushMessage] = []

    async def send(self, message: PushMessage) -> bool:
        if self.delay:
            await asyncio.sleep(self.delay)
        if message.title in self.fail_for:
            raise RuntimeError("provider down")
        self.sent.append(message)
        return True


async def _due(
    conn: asyncpg.Connection, user_id: uuid.UUID, n: int, *, title: str = "Due"
) -> list[uuid.UUID]:
    """``n`` pending schedules already due (inserted directly: the API only accepts future times)."""
    rows = await conn.fetch(
        """INSERT INTO scheduled_notifications (user_id, title, body, data, scheduled_time)
           SELECT $1, $3 || ' ' || g, 'body', '{"k": 1}'::jsonb, (now() AT TIME ZONE 'UTC') - make_interval(secs => g)
           FROM generate_series(1, $2) g RETURNING schedule_id""",
        user_id,
        n,
        title,
    )
    return [r[0] for r in rows]


async def test_inbox_filters_counts_and_read_marks(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, alice: Actor
) -> None:
    for i, kind in enumerate(["info", "alert", "info", "promo", "alert"]):
        await conn.execute(
            """INSERT INTO notifications (user_id, title, body, type, created_at)
               VALUES ($1, $2, 'b', $3, (now() AT TIME ZONE 'UTC') - make_interval(mins => $4))""",
            alice.user_id,
            f"n{i}",
            kind,
            i,
        )
    h = alice.headers
    assert (await client.get("/v1/notifications/unread-count", headers=h)).json() == {"unread": 5}
    page = (await client.get("/v1/notifications?limit=2", headers=h)).json()
    assert [n["title"] for n in page["items"]] == ["n0", "n1"]  # newest first
    page2 = (await client.get(f"/v1/notifications?limit=2&cursor={page['next_cursor']}", headers=h)).json()
    page3 = (await client.get(f"/v1/notifications?limit=2&cursor={page2['next_cursor']}", headers=h)).json()
    assert [n["title"] for n in page2["items"] + page3["items"]] == ["n2", "n3", "n4"]
    assert page3["next_cursor"] is None
    alerts = (await client.get("/v1/notifications?type=alert", headers=h)).json()["items"]
    assert {n["title"] for n in alerts} == {"n1", "n4"}

    target = alerts[0]["notification_id"]
    r = await client.post(f"/v1/notifications/{target}/read", headers=h)
    assert r.status_code == 200
    assert r.json()["read"] is True
    assert r.json()["read_at"]
    first_read_at = r.json()["read_at"]
    again = await client.post(f"/v1/notifications/{target}/read", headers=h)
    assert again.json()["read_at"] == first_read_at  # idempotent: keeps the first read time
    unread = (await client.get("/v1/notifications?unread=true", headers=h)).json()["items"]
    assert len(unread) == 4
    assert target not in {n["notification_id"] for n in unread}
    read = (await client.get("/v1/notifications?unread=false", headers=h)).json()["items"]
    assert [n["notification_id"] for n in read] == [target]
    assert (await client.post("/v1/notifications/read-all", headers=h)).json() == {"updated": 4}
    assert (await client.get("/v1/notifications/unread-count", headers=h)).json() == {"unread": 0}


async def test_schedule_create_list_and_cancel(client: AsyncTestClient[Any], alice: Actor) -> None:
    h = alice.headers
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    later = (soon + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    a = (
        await client.post(
            "/v1/scheduled-notifications",
            headers=h,
            json={"title": "A", "body": "b", "scheduled_time": later.isoformat()},
        )
    ).json()
    b = (
        await client.post(
            "/v1/scheduled-notifications",
            headers=h,
            json={"title": "B", "body": "b", "scheduled_time": soon.isoformat(), "data": {"x": [1]}},
        )
    ).json()
    # Stored in UTC whatever offset the client used.
    assert a["scheduled_time"] == later.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    listing = (await client.get("/v1/scheduled-notifications", headers=h)).json()["items"]
    assert [s["title"] for s in listing] == ["B", "A"]  # soonest first
    r = await client.post(f"/v1/scheduled-notifications/{b['schedule_id']}/cancel", headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    r = await client.post(f"/v1/scheduled-notifications/{b['schedule_id']}/cancel", headers=h)
    assert r.status_code == 409
    assert r.json()["code"] == "not_pending"
    pending = (await client.get("/v1/scheduled-notifications?status=pending", headers=h)).json()["items"]
    assert [s["schedule_id"] for s in pending] == [a["schedule_id"]]


async def test_delivery_creates_the_notification_and_pushes_to_active_devices(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, clean_db: str, alice: Actor
) -> None:
    await client.post(
        "/v1/users/me/devices", headers=alice.headers, json={"device_token": "on", "platform": "ios"}
    )
    off = (
        await client.post(
            "/v1/users/me/devices", headers=alice.headers, json={"device_token": "off", "platform": "android"}
        )
    ).json()
    await client.delete(f"/v1/users/me/devices/{off['device_id']}", headers=alice.headers)
    (schedule_id,) = await _due(conn, alice.user_id, 1)
    provider = RecordingProvider()
    db = Database(clean_db)
    await db.open()
    try:
        assert await jobs.deliver_due(db, provider) == 1
        assert await jobs.deliver_due(db, provider) == 0  # nothing twice
    finally:
        await db.close()
    (message,) = provider.sent
    assert [t.device_token for t in message.targets] == ["on"]
    row = await conn.fetchrow("SELECT * FROM notifications WHERE user_id = $1", alice.user_id)
    assert row["notification_id"] == message.notification_id
    assert row["status"] == "sent"
    assert row["sent_at"] is not None
    assert row["type"] == "scheduled"
    assert json.loads(row["data"]) == {"k": 1, "schedule_id": str(schedule_id)}
    assert (
        await conn.fetchval("SELECT status FROM scheduled_notifications WHERE schedule_id = $1", schedule_id)
        == "sent"
    )
    inbox = (await client.get("/v1/notifications?unread=true", headers=alice.headers)).json()["items"]
    assert [n["notification_id"] for n in inbox] == [str(message.notification_id)]


async def test_a_provider_failure_marks_the_notification_failed_without_blocking_others(
    conn: asyncpg.Connection, clean_db: str, alice: Actor
) -> None:
    await _due(conn, alice.user_id, 2, title="ok")
    await _due(conn, alice.user_id, 1, title="boom")
    db = Database(clean_db)
    await db.open()
    try:
        assert await jobs.deliver_due(db, RecordingProvider(fail_for={"boom 1"})) == 3
    finally:
        await db.close()
    statuses = dict(await conn.fetch("SELECT title, status FROM notifications"))
    assert statuses == {"ok 1": "sent", "ok 2": "sent", "boom 1": "failed"}
    assert await conn.fetchval("SELECT count(*) FROM scheduled_notifications WHERE status = 'pending'") == 0


async def test_two_concurrent_runners_deliver_each_due_row_exactly_once(
    conn: asyncpg.Connection, clean_db: str, alice: Actor, bob: Actor
) -> None:
    """Two runners on separate pools (as two processes would be) race over 400 due rows."""
    ids = set(await _due(conn, alice.user_id, 250)) | set(await _due(conn, bob.user_id, 150))
    first, second = Database(clean_db), Database(clean_db)
    await first.open()
    await second.open()
    # A slow provider keeps each runner's batch locked while the other looks for work.
    p1, p2 = RecordingProvider(delay=0.001), RecordingProvider(delay=0.001)
    try:
        counts = await asyncio.gather(
            jobs.deliver_due(first, p1, batch_size=50), jobs.deliver_due(second, p2, batch_size=50)
        )
    finally:
        await first.close()
        await second.close()
    assert sum(counts) == 400, counts
    assert all(c > 0 for c in counts), counts  # both runners did part of the work
    pushed = [m.schedule_id for m in p1.sent + p2.sent]
    assert len(pushed) == 400
    assert set(pushed) == ids
    rows = await conn.fetch("SELECT data->>'schedule_id' AS sid, count(*) AS n FROM notifications GROUP BY 1")
    assert len(rows) == 400
    assert all(r["n"] == 1 for r in rows)
    assert {uuid.UUID(r["sid"]) for r in rows} == ids
    assert await conn.fetchval("SELECT count(*) FROM scheduled_notifications WHERE status <> 'sent'") == 0


async def test_cancel_racing_delivery_never_both(
    conn: asyncpg.Connection, clean_db: str, alice: Actor
) -> None:
    """A cancel that arrives while the job holds the row waits for it, then finds it sent (409)."""
    (schedule_id,) = await _due(conn, alice.user_id, 1)
    db = Database(clean_db)
    await db.open()

    async def cancel() -> Exception | None:
        # The cancel route's service call, on its own connection (the in-process test client would
        # block this test's event loop while it waits for the lock).
        async with db.transaction() as request_conn:
            try:
                caller = AuthUser(alice.user_id, "user", alice.email)
                await service.cancel_schedule(request_conn, caller, schedule_id)
            except Exception as exc:
                return exc
        return None

    try:
        async with db.transaction() as job_conn:
            assert await service.deliver_batch(job_conn, RecordingProvider()) == 1
            pending_cancel = asyncio.ensure_future(cancel())
            for _ in range(100):  # until the cancel is blocked on the job's row lock
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting == 1
        outcome = await pending_cancel  # the job committed: the cancel resumes and sees the row sent
    finally:
        await db.close()
    assert isinstance(outcome, ScheduleNotPendingError), outcome
    assert await conn.fetchval("SELECT count(*) FROM notifications") == 1
    assert await conn.fetchval("SELECT status FROM scheduled_notifications") == "sent"
