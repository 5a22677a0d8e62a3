"""Real server processes: two deliver 300 events exactly once between them; one killed mid-send has
its delivery retried (same webhook-id) after a restart; no secret reaches a log line."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from kernel import events
from tests.conftest import make_settings
from tests.integration.core.conftest import make_user
from tests.integration.integrations.conftest import ENV
from tests.integration.integrations.receiver import Receiver
from tests.support import LiveServer

pytestmark = pytest.mark.slow

LIVE_ENV = {**ENV, "CORP_ASTRO_LOG_LEVEL": "DEBUG", "CORP_ASTRO_WEBHOOK_POLL_SECONDS": "0.5"}


async def _admin_headers(conn: asyncpg.Connection, url: str, tmp_path: Path) -> dict[str, str]:
    settings = make_settings(url, tmp_path, jwt_secret_override="test-secret-for-live-servers")
    return (await make_user(conn, settings, role="admin")).headers


def _subscribe(server: LiveServer, headers: dict[str, str], url: str) -> dict[str, Any]:
    body = {"client_id": "acme", "event_type": "report.*", "target_url": url}
    r = httpx.post(server.base_url + "/v1/webhooks", json=body, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _wait_delivered(conn: asyncpg.Connection, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'") >= n:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("not delivered in time")


async def test_two_processes_deliver_300_events_exactly_once(
    conn: asyncpg.Connection,
    clean_db: str,
    receiver: Receiver,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    headers = await _admin_headers(conn, clean_db, tmp_path)
    with (
        LiveServer(clean_db, env=LIVE_ENV, scheduler=True) as a,
        LiveServer(clean_db, env=LIVE_ENV, scheduler=True),
    ):
        hook = _subscribe(a, headers, receiver.url)
        receiver.secrets.append(hook["secret"])
        for i in range(300):
            async with conn.transaction():
                await events.emit(conn, "report.created", {"report_id": f"r{i}"})
        await _wait_delivered(conn, 300)
        await asyncio.sleep(1)  # anything sent twice would arrive meanwhile
    ids = receiver.ids()
    assert len(ids) == 300
    assert len(set(ids)) == 300
    assert all(r.verified for r in receiver.received)
    assert await conn.fetchval("SELECT max(attempts) FROM webhook_deliveries") == 1
    logs = capfd.readouterr()
    secret = hook["secret"]
    assert secret not in logs.out + logs.err
    assert secret.removeprefix("whsec_") not in logs.out + logs.err


async def test_a_server_killed_mid_delivery_retries_after_restart(
    conn: asyncpg.Connection, clean_db: str, receiver: Receiver, tmp_path: Path
) -> None:
    headers = await _admin_headers(conn, clean_db, tmp_path)
    env = {**LIVE_ENV, "CORP_ASTRO_WEBHOOK_LEASE_SECONDS": "3"}
    receiver.delay = 6.0  # the first request hangs until the server is dead
    server = LiveServer(clean_db, env=env, scheduler=True).start()
    try:
        hook = _subscribe(server, headers, receiver.url)
        receiver.secrets.append(hook["secret"])
        async with conn.transaction():
            event_id = await events.emit(conn, "report.created", {"report_id": "r"})
        receiver.wait_for(1)
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        row = await conn.fetchrow("SELECT status, attempts FROM webhook_deliveries")
        assert tuple(row) == ("processing", 1)
    finally:
        server.stop()
    receiver.delay = 0.0
    with LiveServer(clean_db, env=env, scheduler=True):
        await _wait_delivered(conn, 1, timeout=30)
    assert receiver.ids() == [f"msg_{event_id}"] * 2
    row = await conn.fetchrow("SELECT status, attempts, delivered_at FROM webhook_deliveries")
    assert row["status"] == "delivered"
    assert row["attempts"] == 2
