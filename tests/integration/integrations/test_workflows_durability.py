"""Durable execution: a runner killed inside step 3 of 4 resumes without repeating steps 1-2; two
runners share 500 executions with each step run exactly once; an event seen by two matchers (and again
after a watermark reset) starts one execution; a schedule in a DST zone fires once per local day."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from litestar.testing import AsyncTestClient

from integrations.workflows import jobs
from integrations.workflows.config import RunnerConfig
from kernel.db import Database, uuid7
from kernel.settings import Settings
from tests.integration.core.conftest import Actor, make_user
from tests.integration.integrations.conftest import ENV
from tests.integration.integrations.receiver import Receiver
from tests.integration.integrations.workflow_helpers import create_workflow, run_due, step
from tests.support import ROOT


async def _poll(conn: asyncpg.Connection, query: str, *args: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await conn.fetchval(query, *args):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {query}")


async def test_kill_inside_step_3_of_4_resumes_without_repeating(
    hooks: AsyncTestClient[Any],
    admin: Actor,
    conn: asyncpg.Connection,
    settings: Settings,
    receiver: Receiver,
) -> None:
    b = await make_user(conn, settings)
    a = await make_user(conn, settings)
    wf = await create_workflow(
        hooks,
        admin,
        [
            step("one", "send_notification", user_id=str(b.user_id), title="first", message="m"),
            step("two", "webhook", url=receiver.url),
            step("three", "send_notification", user_id=str(a.user_id), title="third", message="m"),
            step("four", "set_variables", done=True),
        ],
    )
    r = await hooks.post(f"/v1/workflows/{wf['workflow_id']}/executions", json={}, headers=admin.headers)
    execution_id = uuid.UUID(r.json()["execution_id"])
    url = settings.database_url or ""
    blocker = await asyncpg.connect(url)
    tx = blocker.transaction()
    await tx.start()
    # Step three's notification needs a key-share lock on A's row: held here, step three blocks.
    await blocker.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", a.user_id)
    env = {**os.environ, **ENV, "DATABASE_URL": url}
    runner = subprocess.Popen(  # noqa: ASYNC220  (a real process, to kill)
        [sys.executable, "-m", "corp_astro.cli", "workflows", "run-due"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        await _poll(
            conn,
            """SELECT count(*) = 1 FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%notifications%'""",
        )
        done = await conn.fetch(
            "SELECT step_name FROM workflow_execution_steps WHERE execution_id = $1 AND status = 'completed'",
            execution_id,
        )
        assert sorted(r["step_name"] for r in done) == ["one", "two"]
        os.killpg(runner.pid, signal.SIGKILL)  # the runner dies inside step three
        runner.wait(10)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    # Its server session would roll back once it notices; end it now, as a crashed host's would.
    await conn.execute(
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'"""
    )
    await tx.rollback()
    await blocker.close()
    await _poll(conn, "SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    restarted = subprocess.run(  # noqa: ASYNC221  (the restarted runner, to completion)
        [sys.executable, "-m", "corp_astro.cli", "workflows", "run-due"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    rows = await conn.fetch(
        "SELECT step_name, status, attempts FROM workflow_execution_steps WHERE execution_id = $1",
        execution_id,
    )
    assert sorted((r["step_name"], r["status"], r["attempts"]) for r in rows) == [
        ("four", "completed", 1),
        ("one", "completed", 1),
        ("three", "completed", 1),
        ("two", "completed", 1),
    ]
    assert await conn.fetchval(
        "SELECT status FROM workflow_executions WHERE execution_id = $1", execution_id
    ) == ("completed")
    assert await conn.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", b.user_id) == 1
    assert await conn.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", a.user_id) == 1
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 1


async def _runner(url: str, now: dt.datetime) -> jobs.RunStats:
    db = Database(url, max_size=2)
    await db.open()
    try:
        return await jobs.run_due(db, now, RunnerConfig(settle_seconds=0.0, batch=25))
    finally:
        await db.close()


async def test_two_runners_on_500_executions_run_each_step_once(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    user = await make_user(conn, settings)
    wf = await create_workflow(
        hooks,
        admin,
        [
            step("vars", "set_variables", n="{{ trigger.n }}"),
            step("check", "condition", **{"if": "variables.n >= 0", "then": "notify", "else": "end"}),
            step(
                "notify",
                "send_notification",
                user_id=str(user.user_id),
                title="t",
                message="#{{ variables.n }}",
            ),
        ],
    )
    workflow_id = uuid.UUID(wf["workflow_id"])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    await conn.execute(
        """INSERT INTO workflow_executions (workflow_id, version, trigger_data, next_step, due_at, status)
           SELECT $1, 1, jsonb_build_object('n', g), 'vars', $2, 'pending' FROM generate_series(1, 500) g""",
        workflow_id,
        now,
    )
    url = settings.database_url or ""
    first, second = await asyncio.gather(_runner(url, now), _runner(url, now))
    assert first.steps > 0
    assert second.steps > 0
    assert first.steps + second.steps == 1500
    assert await conn.fetchval("SELECT count(*) FROM workflow_executions WHERE status = 'completed'") == 500
    per_step = await conn.fetch(
        "SELECT step_name, count(*) AS n, max(attempts) AS most FROM workflow_execution_steps GROUP BY step_name"
    )
    assert {(r["step_name"], r["n"], r["most"]) for r in per_step} == {
        ("vars", 500, 1),
        ("check", 500, 1),
        ("notify", 500, 1),
    }
    bodies = await conn.fetch("SELECT body, data ->> 'step_id' AS step_id FROM notifications")
    assert len(bodies) == 500
    assert len({r["step_id"] for r in bodies}) == 500
    assert Counter(r["body"] for r in bodies) == Counter(f"#{n}" for n in range(1, 501))


async def _insert_event(
    conn: asyncpg.Connection, name: str, user_id: uuid.UUID, at: dt.datetime | None = None, **props: str
) -> uuid.UUID:
    event_id = uuid7()
    ts = at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    await conn.execute(
        """INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp", anonymous_id)
           VALUES ($1, $2, $3, 'track', $4, 'anon-1')""",
        event_id, user_id, name, ts,
    )  # fmt: skip
    for key, value in props.items():
        await conn.execute(
            """INSERT INTO event_properties (property_id, event_id, property_name, property_value, "timestamp")
               VALUES ($1, $2, $3, $4, $5)""",
            uuid7(), event_id, key, value, ts,
        )  # fmt: skip
    return event_id


async def test_an_event_starts_one_execution_across_matchers_and_restarts(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    user = await make_user(conn, settings)
    pro = await create_workflow(
        hooks, admin, [step("v", "set_variables", plan="{{ trigger.properties.plan }}")], "event",
        {"event": "Upgraded", "where": {"plan": "pro"}},
    )  # fmt: skip
    await create_workflow(
        hooks, admin, [step("v", "set_variables")], "event", {"event": "Upgraded", "once_per_user": True}
    )
    await asyncio.sleep(0.01)
    for plan in ("pro", "free", "pro"):
        await _insert_event(conn, "Upgraded", user.user_id, plan=plan)
    await _insert_event(conn, "Other", user.user_id, plan="pro")
    url = settings.database_url or ""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    await asyncio.gather(_runner(url, now), _runner(url, now))
    counts = await conn.fetch(
        "SELECT workflow_id, count(*) AS n FROM workflow_executions GROUP BY workflow_id"
    )
    by_workflow = {str(r["workflow_id"]): r["n"] for r in counts}
    assert by_workflow[pro["workflow_id"]] == 2  # the two pro upgrades
    assert sorted(by_workflow.values()) == [1, 2]  # once_per_user: one of three
    variables = await conn.fetch(
        "SELECT variables FROM workflow_executions WHERE workflow_id = $1", uuid.UUID(pro["workflow_id"])
    )
    assert all(json.loads(r["variables"]) == {"plan": "pro"} for r in variables)
    # A restart that lost its watermark reads everything again and starts nothing.
    await conn.execute("DELETE FROM workflow_watermarks")
    stats = await run_due(url)
    assert stats.events == 3
    assert stats.started == 0
    assert await conn.fetchval("SELECT count(*) FROM workflow_executions") == 3


async def test_schedule_in_a_dst_zone_fires_once_per_local_day(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    wf = await create_workflow(
        hooks, admin, [step("v", "set_variables", at="{{ trigger.scheduled_at }}")], "schedule",
        {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    )  # fmt: skip
    start = dt.datetime(2027, 3, 25)  # the spring change (02:00 -> 03:00) is on 28 March 2027
    await conn.execute(
        "UPDATE workflows SET next_run_at = $2 WHERE workflow_id = $1",
        uuid.UUID(wf["workflow_id"]),
        dt.datetime(2027, 3, 25, 1, 30),
    )
    url = settings.database_url or ""
    db = Database(url, max_size=2)
    await db.open()
    try:
        t = start
        while t < start + dt.timedelta(days=6):
            await jobs.run_due(db, t, RunnerConfig(settle_seconds=0.0))
            t += dt.timedelta(hours=1)
    finally:
        await db.close()
    rows = await conn.fetch("SELECT trigger_data ->> 'scheduled_at' AS at FROM workflow_executions")
    berlin = ZoneInfo("Europe/Berlin")
    local = [dt.datetime.fromisoformat(r["at"].replace("Z", "+00:00")).astimezone(berlin) for r in rows]
    days = Counter(x.date() for x in local)
    assert sorted(days) == [dt.date(2027, 3, d) for d in range(25, 31)]
    assert set(days.values()) == {1}


async def test_once_per_user_starts_from_the_users_first_event(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    """Events stored together (one ingest batch: one created_at) start from the earliest by their own
    time, not by storage order or event id."""
    user = await make_user(conn, settings)
    flow = await create_workflow(
        hooks, admin, [step("v", "set_variables")], "event", {"event": "Bought", "once_per_user": True}
    )
    await asyncio.sleep(0.01)
    first = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(minutes=5)
    async with conn.transaction():
        for offset in (2, 0, 1):
            await _insert_event(conn, "Bought", user.user_id, first + dt.timedelta(seconds=offset))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    await _runner(settings.database_url or "", now)
    rows = await conn.fetch(
        "SELECT trigger_data FROM workflow_executions WHERE workflow_id = $1", uuid.UUID(flow["workflow_id"])
    )
    assert [json.loads(r["trigger_data"])["timestamp"] for r in rows] == [first.isoformat() + "Z"]
