"""The runner's batch: steps without effects run in memory and are written with the next notification
in one transaction, every step row complete; one bad execution in a batch (a notification that cannot
be inserted, a value that cannot be templated) fails alone, and the others' steps still run once."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from kernel.settings import Settings
from tests.integration.core.conftest import Actor, make_user
from tests.integration.integrations.workflow_helpers import create_workflow, run_due, step

STEPS = [
    step("vars", "set_variables", who="{{ trigger.who }}"),
    step("check", "condition", **{"if": "variables.who != null", "then": "notify", "else": "end"}),
    step(
        "notify", "send_notification", user_id="{{ variables.who }}", title="t", message="for {{ trigger.n }}"
    ),
    step("after", "set_variables", done=True),
    step("hook", "webhook", url="http://127.0.0.1:9/hook"),
]


async def _start(hooks: AsyncTestClient[Any], admin: Actor, workflow_id: str, **trigger: Any) -> str:
    r = await hooks.post(
        f"/v1/workflows/{workflow_id}/executions", json={"trigger_data": trigger}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["execution_id"])


async def _steps(conn: asyncpg.Connection, execution_id: str) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT * FROM workflow_execution_steps WHERE execution_id = $1", uuid.UUID(execution_id)
    )
    return {r["step_name"]: r for r in rows}


async def test_one_bad_execution_does_not_hold_back_the_batch(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    url = settings.database_url or ""
    users = [await make_user(conn, settings) for _ in range(3)]
    wf = await create_workflow(hooks, admin, STEPS)
    good = [
        await _start(hooks, admin, wf["workflow_id"], who=str(u.user_id), n=i) for i, u in enumerate(users)
    ]
    missing = await _start(hooks, admin, wf["workflow_id"], who=str(uuid.uuid4()), n=9)  # no such user
    garbled = await _start(hooks, admin, wf["workflow_id"], who="nobody", n=8)  # not a user id
    stats = await run_due(url)
    # The good ones: vars, check, notify and after in one batch, then the webhook step (its own effect).
    assert await conn.fetchval("SELECT count(*) FROM notifications") == 3
    for i, execution_id in enumerate(good):
        rows = await _steps(conn, execution_id)
        assert sorted(rows) == ["after", "check", "hook", "notify", "vars"]
        for r in rows.values():
            assert (r["status"], r["attempts"], r["error_message"]) == ("completed", 1, None)
            assert r["started_at"] is not None
            assert r["completed_at"] is not None
            assert r["output"] is not None
        assert f'"for {i}"' in rows["notify"]["input"]
        note = await conn.fetchrow("SELECT user_id, data FROM notifications WHERE body = $1", f"for {i}")
        assert note["user_id"] == users[i].user_id
        assert f'"step_id": "{rows["notify"]["step_id"]}"' in note["data"]
        status = await conn.fetchval(
            "SELECT status FROM workflow_executions WHERE execution_id = $1", uuid.UUID(execution_id)
        )
        assert status == "completed"
    # The bad ones: their notify step is a failed attempt, retried later; the steps before it are done.
    for execution_id, error in ((missing, "ForeignKeyViolation"), (garbled, "not a user id")):
        ex = await conn.fetchrow(
            "SELECT status, next_step, attempts, due_at FROM workflow_executions WHERE execution_id = $1",
            uuid.UUID(execution_id),
        )
        assert (ex["status"], ex["next_step"], ex["attempts"]) == ("running", "notify", 1)
        assert ex["due_at"] > dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = await _steps(conn, execution_id)
        assert {n: r["status"] for n, r in rows.items()} == {
            "vars": "completed",
            "check": "completed",
            "notify": "pending",
        }
        assert error in rows["notify"]["error_message"]
    # A database error is recorded by its class and SQLSTATE, without the table and constraint names.
    recorded = (await _steps(conn, missing))["notify"]["error_message"]
    assert "SQLSTATE 23503" in recorded
    assert "notifications" not in recorded
    assert stats.retried == 2
    assert stats.completed == 3
    assert stats.steps == 3 * 5 + 2 * 2
    # Running again before the retry is due does nothing more.
    again = await run_due(url)
    assert again.steps == 0
    assert await conn.fetchval("SELECT count(*) FROM notifications") == 3
