"""The workflows API: definitions validated (422 naming step and field), versions, executions read,
cancelled and retried, manual and signed inbound triggers; 404 ``not_found`` for missing rows."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from integrations import signing
from kernel.settings import Settings
from tests.integration.core.conftest import Actor, make_user
from tests.integration.integrations.workflow_helpers import create_workflow, run_due, step


async def test_schema_is_served_and_a_valid_workflow_is_created(
    hooks: AsyncTestClient[Any], admin: Actor
) -> None:
    r = await hooks.get("/v1/workflows/schema", headers=admin.headers)
    assert r.status_code == 200
    assert "send_notification" in json.dumps(r.json())
    wf = await create_workflow(hooks, admin, [step("vars", "set_variables", plan="pro")])
    assert wf["secret"].startswith("whsec_")
    assert wf["version"] == 1
    assert wf["status"] == "active"
    got = await hooks.get(f"/v1/workflows/{wf['workflow_id']}", headers=admin.headers)
    assert got.status_code == 200
    assert "secret" not in got.json()


INVALID = [
    ([step("a", "send_notification", title="t", message="m")], "body.definition.steps[0].input.user_id"),
    ([step("a", "condition", **{"if": "trigger.x ==", "then": "end"})], "body.definition.steps[0].input.if"),
    (
        [step("a", "condition", **{"if": "trigger.x", "then": "nowhere"})],
        "body.definition.steps[0].input.then",
    ),
    (
        [step("a", "set_variables"), step("b", "condition", **{"if": "true", "then": "a"})],
        "body.definition.steps[1].input.then",
    ),
    ([step("a", "delay", **{"for": "1 fortnight"})], "body.definition.steps[0].input.for"),
    ([step("a", "wait_for_event", event="X")], "body.definition.steps[0].input.timeout"),
    ([step("a", "webhook")], "body.definition.steps[0].input"),
    ([step("a", "webhook", url="http://10.0.0.1/x")], "body.definition.steps[0].input.url"),
    ([step("a", "teleport")], "body.definition.steps[0].type"),
    ([step("a", "set_variables"), step("a", "set_variables")], "body.definition.steps[1].name"),
    ([step("a", "set_variables", x="{{ os.environ }}")], "body.definition.steps[0].input"),
    ([], "body.definition.steps"),
]


async def test_every_invalid_definition_is_a_422_naming_step_and_field(
    hooks: AsyncTestClient[Any], admin: Actor
) -> None:
    for steps, field in INVALID:
        r = await hooks.post(
            "/v1/workflows",
            json={"name": "bad", "definition": {"steps": steps}, "trigger_type": "manual"},
            headers=admin.headers,
        )
        assert r.status_code == 422, (steps, r.text)
        body = r.json()
        assert body["code"] == "validation_error"
        fields = [d["field"] for d in body["details"]]
        assert field in fields, (field, body)
        if steps:
            assert all("step" in d["message"] for d in body["details"] if "steps[" in d["field"]), body


async def test_invalid_trigger_configs(hooks: AsyncTestClient[Any], admin: Actor) -> None:
    cases = [
        ("event", {}, "body.trigger_config"),
        ("event", {"event": "X", "once_per_user": "yes"}, "body.trigger_config.once_per_user"),
        ("schedule", {"cron": "0 9 * *"}, "body.trigger_config.cron"),
        ("schedule", {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "body.trigger_config.cron"),
    ]
    for trigger_type, config, field in cases:
        r = await hooks.post(
            "/v1/workflows",
            json={
                "name": "x",
                "definition": {"steps": [step("a", "set_variables")]},
                "trigger_type": trigger_type,
                "trigger_config": config,
            },
            headers=admin.headers,
        )
        assert r.status_code == 422, r.text
        assert field in [d["field"] for d in r.json()["details"]] or any(
            d["field"].startswith(field) for d in r.json()["details"]
        ), r.json()


async def test_missing_rows_are_404_not_found_and_users_are_403(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    for path in (
        f"/v1/workflows/{uuid.uuid4()}",
        f"/v1/workflow-executions/{uuid.uuid4()}",
        f"/v1/workflows/{uuid.uuid4()}/executions",
    ):
        r = await hooks.get(path, headers=admin.headers)
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "not_found"
    user = await make_user(conn, settings)
    assert (await hooks.get("/v1/workflows", headers=user.headers)).status_code == 403


async def test_definition_change_applies_to_new_executions_only(
    hooks: AsyncTestClient[Any], admin: Actor, settings: Settings
) -> None:
    wf = await create_workflow(
        hooks, admin, [step("wait", "delay", **{"for": "1h"}), step("v", "set_variables", which="one")]
    )
    wid = wf["workflow_id"]
    first = await hooks.post(f"/v1/workflows/{wid}/executions", json={}, headers=admin.headers)
    assert first.status_code == 201
    assert first.json()["version"] == 1
    await run_due(settings.database_url or "")  # reaches the delay
    new_def = {"steps": [step("wait", "delay", **{"for": "1h"}), step("v", "set_variables", which="two")]}
    r = await hooks.patch(f"/v1/workflows/{wid}", json={"definition": new_def}, headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["version"] == 2
    second = await hooks.post(f"/v1/workflows/{wid}/executions", json={}, headers=admin.headers)
    assert second.json()["version"] == 2
    await run_due(settings.database_url or "")  # the second reaches its delay too
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=3)
    await run_due(settings.database_url or "", now=later)
    for execution, expected in ((first, "one"), (second, "two")):
        detail = (
            await hooks.get(
                f"/v1/workflow-executions/{execution.json()['execution_id']}", headers=admin.headers
            )
        ).json()
        assert detail["status"] == "completed", detail
        assert detail["variables"] == {"which": expected}


async def test_cancel_and_retry(hooks: AsyncTestClient[Any], admin: Actor, settings: Settings) -> None:
    wf = await create_workflow(
        hooks, admin, [step("n", "send_notification", user_id="{{ trigger.who }}", title="t", message="m")]
    )
    wid = wf["workflow_id"]
    ex = (
        await hooks.post(
            f"/v1/workflows/{wid}/executions", json={"trigger_data": {"who": "nobody"}}, headers=admin.headers
        )
    ).json()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for minutes in (0, 5, 30):  # attempts 1..3 (30 s, then 1 min backoff)
        await run_due(settings.database_url or "", now=now + dt.timedelta(minutes=minutes))
    detail = (await hooks.get(f"/v1/workflow-executions/{ex['execution_id']}", headers=admin.headers)).json()
    assert detail["status"] == "failed"
    assert "not a user id" in detail["error_message"]
    assert detail["steps"][0]["status"] == "failed"
    assert detail["steps"][0]["attempts"] == 3
    assert (
        await hooks.post(f"/v1/workflow-executions/{ex['execution_id']}/cancel", headers=admin.headers)
    ).status_code == 409
    r = await hooks.post(f"/v1/workflow-executions/{ex['execution_id']}/retry", headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["status"] == "running"
    r = await hooks.post(f"/v1/workflow-executions/{ex['execution_id']}/cancel", headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert (
        await hooks.post(f"/v1/workflow-executions/{ex['execution_id']}/retry", headers=admin.headers)
    ).status_code == 409


async def test_signed_inbound_trigger_starts_one_execution_per_webhook_id(
    hooks: AsyncTestClient[Any], admin: Actor
) -> None:
    wf = await create_workflow(
        hooks, admin, [step("v", "set_variables", got="{{ trigger.order }}")], "webhook"
    )
    path = f"/v1/workflows/{wf['workflow_id']}/trigger"
    body = json.dumps({"order": 42}).encode()
    stamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "content-type": "application/json",
        "webhook-signature": signing.sign(wf["secret"], "msg_1", stamp, body),
    }
    first = await hooks.post(path, content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["duplicate"] is False
    again = await hooks.post(path, content=body, headers=headers)
    assert again.status_code == 202
    assert again.json() == {"execution_id": None, "duplicate": True}
    bad = {**headers, "webhook-signature": "v1,AAAA"}
    r = await hooks.post(path, content=body, headers=bad)
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_signature"
    stale = {**headers, "webhook-timestamp": str(stamp - 3600)}
    assert (await hooks.post(path, content=body, headers=stale)).status_code == 401
    manual = await create_workflow(hooks, admin, [step("v", "set_variables")])
    r = await hooks.post(f"/v1/workflows/{manual['workflow_id']}/trigger", content=body, headers=headers)
    assert r.status_code == 404


async def test_assign_experiment_step_uses_the_public_assignment(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    from tests.integration.experiments.conftest import definition as experiment

    r = await hooks.post("/v1/experiments", json=experiment("wf-exp"), headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["running"] is True
    user = await make_user(conn, settings)
    wf = await create_workflow(
        hooks,
        admin,
        [
            step("assign", "assign_experiment", experiment="wf-exp", user_id="{{ trigger.user }}"),
            step("v", "set_variables", variant="{{ steps.assign.output.variant }}"),
        ],
    )
    ex = await hooks.post(
        f"/v1/workflows/{wf['workflow_id']}/executions",
        json={"trigger_data": {"user": str(user.user_id)}},
        headers=admin.headers,
    )
    await run_due(settings.database_url or "")
    detail = (
        await hooks.get(f"/v1/workflow-executions/{ex.json()['execution_id']}", headers=admin.headers)
    ).json()
    assert detail["status"] == "completed", detail
    stored = await conn.fetchval(
        """SELECT v.name FROM ab_test_assignments a JOIN ab_test_variants v USING (variant_id)
           WHERE a.user_id = $1""",
        user.user_id,
    )
    assert detail["variables"]["variant"] == stored
    assert detail["steps"][0]["output"]["new"] is True


async def test_webhook_step_to_a_subscription_reuses_its_delivery_id_as_webhook_id(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    r = await hooks.post(
        "/v1/webhooks",
        json={
            "client_id": "crm",
            "event_type": "workflow.execution_completed",
            "target_url": "http://127.0.0.1:9/x",
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    webhook_id = r.json()["webhook_id"]
    wf = await create_workflow(
        hooks,
        admin,
        [step("tell", "webhook", webhook_id=webhook_id, payload={"order": "{{ trigger.order }}"})],
    )
    ex = await hooks.post(
        f"/v1/workflows/{wf['workflow_id']}/executions",
        json={"trigger_data": {"order": 7}},
        headers=admin.headers,
    )
    await run_due(settings.database_url or "")
    detail = (
        await hooks.get(f"/v1/workflow-executions/{ex.json()['execution_id']}", headers=admin.headers)
    ).json()
    assert detail["status"] == "completed", detail
    step_row = detail["steps"][0]
    rows = await conn.fetch("SELECT event_id, event_type, payload FROM webhook_deliveries ORDER BY queued_at")
    by_type = {r["event_type"]: r for r in rows}
    delivery = by_type["workflow.webhook"]
    assert str(delivery["event_id"]) == step_row["step_id"]
    assert json.loads(delivery["payload"])["data"] == {"order": 7}
    # The completion event reaches the subscription through the outbox once the dispatcher fans it out.
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM event_outbox WHERE event_type = 'workflow.execution_completed'"
        )
        + len([r for r in rows if r["event_type"] == "workflow.execution_completed"])
        == 1
    )


def _cli(database_url: str, *args: str) -> Any:
    import os
    import subprocess
    import sys

    from tests.support import ROOT

    return subprocess.run(
        [sys.executable, "-m", "corp_astro.cli", "workflows", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_list_and_show(hooks: AsyncTestClient[Any], admin: Actor, settings: Settings) -> None:
    wf = await create_workflow(hooks, admin, [step("v", "set_variables", x=1)])
    ex = (
        await hooks.post(f"/v1/workflows/{wf['workflow_id']}/executions", json={}, headers=admin.headers)
    ).json()
    url = settings.database_url or ""
    ran = _cli(url, "run-due", "--now", "2030-01-01T00:00:00+02:00")
    assert ran.returncode == 0, ran.stderr
    assert "steps run 1" in ran.stdout
    listed = _cli(url, "list")
    assert wf["workflow_id"] in listed.stdout
    shown = _cli(url, "show", ex["execution_id"])
    assert json.loads(shown.stdout)["steps"][0]["output"] == {"x": 1}
    assert json.loads(shown.stdout)["status"] == "completed"
    workflow = json.loads(_cli(url, "show", wf["workflow_id"]).stdout)
    assert workflow["executions"][0]["execution_id"] == ex["execution_id"]
    missing = _cli(url, "show", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert "No workflow or execution" in missing.stderr
