"""``wait_for_event`` under ``run-due --now T`` with T a day ahead: the wait began at the run's clock
(T), yet an event the user sends afterwards (stored at the real clock, before T) satisfies it; without
one it times out; an event stored before the wait began, or whose own timestamp is past the timeout,
does not count."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from kernel.db import uuid7
from kernel.settings import Settings
from tests.integration.core.conftest import Actor, make_user
from tests.integration.integrations.workflow_helpers import create_workflow, run_due, step

STEPS = [
    step("wait", "wait_for_event", event="Report Opened", timeout="1d"),
    step("after", "set_variables", opened="{{ steps.wait.output.received }}"),
]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def _event(conn: asyncpg.Connection, user_id: uuid.UUID, name: str, at: dt.datetime) -> None:
    await conn.execute(
        """INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp")
           VALUES ($1, $2, $3, 'track', $4)""",
        uuid7(), user_id, name, at,
    )  # fmt: skip


async def _begin_ahead(
    hooks: AsyncTestClient[Any], admin: Actor, url: str, user_id: uuid.UUID
) -> tuple[str, dt.datetime]:
    """An execution whose wait begins in a run a day ahead (T): its id and T."""
    execution_id = await _start(hooks, admin, user_id)
    ahead = _utcnow() + dt.timedelta(days=1)
    await run_due(url, now=ahead)
    return execution_id, ahead


async def _start(hooks: AsyncTestClient[Any], admin: Actor, user_id: uuid.UUID) -> str:
    wf = await create_workflow(hooks, admin, STEPS)
    r = await hooks.post(
        f"/v1/workflows/{wf['workflow_id']}/executions",
        json={"trigger_data": {"user": str(user_id)}},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["execution_id"])


async def _detail(hooks: AsyncTestClient[Any], admin: Actor, execution_id: str) -> dict[str, Any]:
    r = await hooks.get(f"/v1/workflow-executions/{execution_id}", headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_an_event_sent_after_a_wait_begun_a_day_ahead_satisfies_it(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    url = settings.database_url or ""
    user = await make_user(conn, settings)
    execution_id, ahead = await _begin_ahead(hooks, admin, url, user.user_id)
    detail = await _detail(hooks, admin, execution_id)
    assert detail["status"] == "waiting"
    assert detail["steps"][0]["started_at"].startswith(ahead.date().isoformat())
    await _event(conn, user.user_id, "Report Opened", _utcnow())  # real time: before T
    await run_due(url, now=ahead)  # the matcher wakes it; the event counts
    detail = await _detail(hooks, admin, execution_id)
    assert detail["status"] == "completed", detail
    wait = detail["steps"][0]
    assert wait["output"]["received"] is True
    assert wait["output"]["event_data"]["event"] == "Report Opened"
    assert detail["variables"] == {"opened": True}


async def test_a_wait_begun_a_day_ahead_counts_the_event_at_its_timeout_too(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    url = settings.database_url or ""
    user = await make_user(conn, settings)
    execution_id, ahead = await _begin_ahead(hooks, admin, url, user.user_id)
    # Not woken (its watermark is past the event): the event is found when the timeout resumes it.
    await _event(conn, user.user_id, "Report Opened", _utcnow())
    moved = await conn.execute(
        "UPDATE workflow_watermarks SET position_at = $1", _utcnow() + dt.timedelta(hours=1)
    )
    assert moved == "UPDATE 1"  # the wait started the matcher's watermark
    await run_due(url, now=ahead)
    assert (await _detail(hooks, admin, execution_id))["status"] == "waiting"
    await run_due(url, now=ahead + dt.timedelta(days=1, minutes=1))
    detail = await _detail(hooks, admin, execution_id)
    assert detail["status"] == "completed", detail
    assert detail["steps"][0]["output"]["received"] is True


async def test_without_the_event_a_wait_times_out_a_day_ahead(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    url = settings.database_url or ""
    user = await make_user(conn, settings)
    other = await make_user(conn, settings)
    await _event(conn, user.user_id, "Report Opened", _utcnow())  # stored before the wait began
    execution_id = await _start(hooks, admin, user.user_id)
    await run_due(url)  # the wait begins at the real clock
    assert (await _detail(hooks, admin, execution_id))["status"] == "waiting"
    timeout_at = _utcnow() + dt.timedelta(days=1)
    await _event(conn, other.user_id, "Report Opened", _utcnow())  # another user's
    await _event(conn, user.user_id, "Report Closed", _utcnow())  # another event
    await _event(conn, user.user_id, "Report Opened", timeout_at + dt.timedelta(hours=1))  # past the timeout
    await run_due(url, now=_utcnow() + dt.timedelta(days=1, minutes=1))
    detail = await _detail(hooks, admin, execution_id)
    assert detail["status"] == "completed", detail
    output = detail["steps"][0]["output"]
    assert output["received"] is False
    assert output["timed_out"] is True
    assert detail["variables"] == {"opened": False}
