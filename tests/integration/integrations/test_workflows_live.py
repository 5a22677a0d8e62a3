"""The issue's scenario end to end, against a real server process with its scheduler on:

the Segment SDK sends ``Report Purchased``; the server's runner reaches ``wait_for_event`` (a waiting
row, no worker held); ``corp-astro workflows run-due --now`` a day ahead times the wait out; the
condition sees the report was not opened; a notification row appears; a signed webhook reaches a
receiver on 127.0.0.1. The same event sent twice starts one execution; a user who opened the report
gets no notification.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from segment.analytics.client import Client as SegmentClient

from ingest import service as ingest_service
from tests.conftest import make_settings
from tests.integration.core.conftest import make_user
from tests.integration.integrations.conftest import ENV
from tests.integration.integrations.receiver import Receiver
from tests.support import ROOT, LiveServer

SERVER_ENV = {**ENV, "CORP_ASTRO_WORKFLOW_POLL_SECONDS": "0.2", "CORP_ASTRO_WORKFLOW_SETTLE_SECONDS": "0.2"}


@pytest.fixture
def server(clean_db: str, tmp_path: Path) -> Iterator[LiveServer]:
    env = {**SERVER_ENV, "CORP_ASTRO_DATA_DIR": str(tmp_path)}
    with LiveServer(clean_db, env=env, scheduler=True) as live:
        yield live


def run_due_cli(database_url: str, now: dt.datetime) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "corp_astro.cli", "workflows", "run-due", "--now", now.isoformat()],
        cwd=ROOT,
        env={**os.environ, **SERVER_ENV, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


async def wait_for(
    conn: asyncpg.Connection, query: str, *args: Any, expect: Any, seconds: float = 20
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await conn.fetchval(query, *args) == expect:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{query} never gave {expect!r} (last {await conn.fetchval(query, *args)!r})")


SCENARIO = [
    {"name": "wait_opened", "type": "wait_for_event", "input": {"event": "Report Opened", "timeout": "1d"}},
    {
        "name": "check",
        "type": "condition",
        "input": {"if": "not steps.wait_opened.output.received", "then": "notify", "else": "crm"},
    },
    {
        "name": "notify",
        "type": "send_notification",
        "input": {
            "user_id": "{{ trigger.user_id }}",
            "title": "Your report is waiting",
            "message": "Open {{ trigger.properties.report_name }}",
            "notification_type": "workflow",
        },
    },
    {"name": "crm", "type": "webhook", "input": {"url": "RECEIVER"}},
]


async def test_report_purchased_scenario(
    server: LiveServer, conn: asyncpg.Connection, clean_db: str, tmp_path: Path, receiver: Receiver
) -> None:
    settings = make_settings(clean_db, tmp_path, jwt_secret_override="test-secret-for-live-servers")
    admin = await make_user(conn, settings, role="admin")
    buyer = await make_user(conn, settings)
    reader = await make_user(conn, settings)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    async with conn.transaction():
        source = await ingest_service.create_source(conn, "sdk")
    steps = json.loads(json.dumps(SCENARIO).replace("RECEIVER", receiver.url))
    body = {
        "name": "Report nudge",
        "definition": {"steps": steps},
        "trigger_type": "event",
        "trigger_config": {"event": "Report Purchased", "once_per_user": True},
    }
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        r = await http.post("/v1/workflows", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    workflow = r.json()
    receiver.secrets.append(workflow["secret"])

    def send() -> None:
        sdk = SegmentClient(
            source.write_key,
            host=server.base_url,
            max_retries=3,
            sync_mode=True,
            on_error=lambda exc, batch: errors.append(exc),
        )
        for _ in range(2):  # the same message twice: ingest keeps one event
            sdk.track(str(buyer.user_id), "Report Purchased", {"report_name": "Q3"}, message_id="rp-1")
        # another purchase by the same user: once_per_user starts nothing more
        sdk.track(str(buyer.user_id), "Report Purchased", {"report_name": "Q4"}, message_id="rp-2")
        sdk.track(str(reader.user_id), "Report Purchased", {"report_name": "Q3"}, message_id="rp-3")

    errors: list[object] = []
    await asyncio.to_thread(send)
    assert errors == []
    assert await conn.fetchval("SELECT count(*) FROM analytics_events") == 3
    # The server's runner reaches the wait step of both executions, at its real clock.
    await wait_for(
        conn,
        "SELECT count(*) FROM workflow_execution_steps WHERE step_name = 'wait_opened' AND status = 'waiting'",
        expect=2,
    )
    await asyncio.to_thread(
        lambda: SegmentClient(source.write_key, host=server.base_url, sync_mode=True).track(
            str(reader.user_id), "Report Opened", {"report_name": "Q3"}, message_id="ro-1"
        )
    )
    # The matcher wakes the reader's execution at once: it skips the notification.
    await wait_for(
        conn,
        """SELECT count(*) FROM workflow_executions e WHERE e.status = 'completed'
           AND e.trigger_data ->> 'user_id' = $1""",
        str(reader.user_id),
        expect=1,
    )
    assert await conn.fetchval("SELECT count(*) FROM workflow_executions") == 2
    assert await conn.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", buyer.user_id) == 0

    out = run_due_cli(clean_db, dt.datetime.now(dt.UTC) + dt.timedelta(days=1, minutes=1))
    assert "steps run" in out
    ex = await conn.fetchrow(
        "SELECT * FROM workflow_executions WHERE trigger_data ->> 'user_id' = $1", str(buyer.user_id)
    )
    assert ex["status"] == "completed", dict(ex)
    rows = await conn.fetch(
        "SELECT step_name, status, output, attempts FROM workflow_execution_steps WHERE execution_id = $1"
        " ORDER BY started_at, step_id",
        ex["execution_id"],
    )
    assert [(r["step_name"], r["status"], r["attempts"]) for r in rows] == [
        ("wait_opened", "completed", 1),
        ("check", "completed", 1),
        ("notify", "completed", 1),
        ("crm", "completed", 1),
    ]
    outputs = {
        r["step_name"]: json.loads(r["output"]) if isinstance(r["output"], str) else r["output"] for r in rows
    }
    assert outputs["wait_opened"]["received"] is False
    assert outputs["check"] == {"result": True, "next": "notify"}
    note = await conn.fetchrow(
        "SELECT title, body, data FROM notifications WHERE user_id = $1", buyer.user_id
    )
    assert note["title"] == "Your report is waiting"
    assert note["body"] == "Open Q3"
    # The signed webhook reaches the receiver (sent by the server's dispatcher).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(receiver.received) < 2:  # noqa: ASYNC110  (another thread's list)
        await asyncio.sleep(0.1)
    assert len(receiver.received) == 2  # the buyer's and the reader's crm steps
    assert all(got.verified for got in receiver.received)
    payloads = {got.payload["data"]["execution_id"]: got.payload for got in receiver.received}
    assert str(ex["execution_id"]) in payloads
    assert payloads[str(ex["execution_id"])]["type"] == "workflow.webhook"
    assert await conn.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", reader.user_id) == 0
    # Running again changes nothing: every effect happened once.
    run_due_cli(clean_db, dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    assert await conn.fetchval("SELECT count(*) FROM notifications") == 1
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 2
