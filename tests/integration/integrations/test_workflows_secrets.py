"""``POST /v1/workflows/{id}/rotate-secret``: a new secret shown once; for the overlap (24 h) both the
old and the new one verify inbound triggers and sign the ``{url}`` webhook steps, then only the new
one; admin only; 404 for a missing workflow."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from integrations import signing
from integrations.dispatcher import Dispatcher
from kernel.settings import Settings
from tests.integration.core.conftest import Actor, make_user
from tests.integration.integrations.receiver import Receiver
from tests.integration.integrations.test_delivery import drain
from tests.integration.integrations.workflow_helpers import create_workflow, run_due, step


def _signed(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "content-type": "application/json",
        "webhook-signature": signing.sign(secret, msg_id, stamp, body),
    }


async def _rotate(client: AsyncTestClient[Any], admin: Actor, workflow_id: str) -> dict[str, Any]:
    r = await client.post(f"/v1/workflows/{workflow_id}/rotate-secret", headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_both_secrets_verify_triggers_during_the_overlap_then_only_the_new_one(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection
) -> None:
    wf = await create_workflow(
        hooks, admin, [step("v", "set_variables", got="{{ trigger.order }}")], "webhook"
    )
    old = wf["secret"]
    rotated = await _rotate(hooks, admin, wf["workflow_id"])
    new = rotated["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert rotated["workflow_id"] == wf["workflow_id"]
    assert rotated["version"] == 1
    assert "previous_secret" not in rotated
    got = (await hooks.get(f"/v1/workflows/{wf['workflow_id']}", headers=admin.headers)).json()
    assert "secret" not in got
    assert "previous_secret" not in got
    path = f"/v1/workflows/{wf['workflow_id']}/trigger"
    body = json.dumps({"order": 1}).encode()
    for n, secret in enumerate((new, old)):
        r = await hooks.post(path, content=body, headers=_signed(secret, f"msg_{n}", body))
        assert r.status_code == 202, r.text
        assert r.json()["duplicate"] is False
    # The overlap has passed: the old secret no longer verifies; the new one does.
    await conn.execute(
        "UPDATE workflows SET previous_secret_expires_at = now() AT TIME ZONE 'UTC' - interval '1 second'"
    )
    r = await hooks.post(path, content=body, headers=_signed(old, "msg_2", body))
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_signature"
    r = await hooks.post(path, content=body, headers=_signed(new, "msg_3", body))
    assert r.status_code == 202, r.text
    # A second rotation retires the first secret at once: the previous one is now the second.
    newest = (await _rotate(hooks, admin, wf["workflow_id"]))["secret"]
    for n, secret in enumerate((newest, new)):
        r = await hooks.post(path, content=body, headers=_signed(secret, f"msg_1{n}", body))
        assert r.status_code == 202, r.text
    assert (await hooks.post(path, content=body, headers=_signed(old, "msg_20", body))).status_code == 401
    assert await conn.fetchval("SELECT count(*) FROM workflow_executions") == 5


async def test_url_webhook_steps_are_signed_with_both_secrets_during_the_overlap(
    hooks: AsyncTestClient[Any],
    admin: Actor,
    conn: asyncpg.Connection,
    settings: Settings,
    receiver: Receiver,
    dispatcher: Dispatcher,
) -> None:
    wf = await create_workflow(hooks, admin, [step("crm", "webhook", url=receiver.url)])
    start = f"/v1/workflows/{wf['workflow_id']}/executions"
    assert (await hooks.post(start, json={}, headers=admin.headers)).status_code == 201
    await run_due(settings.database_url or "")  # creates the workflow's endpoint, signed with its secret
    await drain(dispatcher, conn)
    (first,) = receiver.wait_for(1)
    assert len(first.headers["webhook-signature"].split(" ")) == 1
    old = wf["secret"]
    new = (await _rotate(hooks, admin, wf["workflow_id"]))["secret"]
    assert (await hooks.post(start, json={}, headers=admin.headers)).status_code == 201
    await run_due(settings.database_url or "")
    await drain(dispatcher, conn)
    second = receiver.wait_for(2)[-1]
    assert len(second.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        receiver.secrets[:] = [secret]
        assert receiver.verify(second.headers, second.body)[0]
    await conn.execute(
        "UPDATE webhooks SET previous_secret_expires_at = now() AT TIME ZONE 'UTC' - interval '1 second'"
    )
    assert (await hooks.post(start, json={}, headers=admin.headers)).status_code == 201
    await run_due(settings.database_url or "")
    await drain(dispatcher, conn)
    third = receiver.wait_for(3)[-1]
    assert len(third.headers["webhook-signature"].split(" ")) == 1
    receiver.secrets[:] = [new]
    assert receiver.verify(third.headers, third.body)[0]
    assert await conn.fetchval("SELECT count(*) FROM webhooks") == 1


async def test_rotation_is_for_admins_of_existing_workflows(
    hooks: AsyncTestClient[Any], admin: Actor, conn: asyncpg.Connection, settings: Settings
) -> None:
    wf = await create_workflow(hooks, admin, [step("v", "set_variables")])
    user = await make_user(conn, settings)
    r = await hooks.post(f"/v1/workflows/{wf['workflow_id']}/rotate-secret", headers=user.headers)
    assert r.status_code == 403
    assert (await hooks.post(f"/v1/workflows/{wf['workflow_id']}/rotate-secret")).status_code == 401
    r = await hooks.post(f"/v1/workflows/{uuid.uuid4()}/rotate-secret", headers=admin.headers)
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    sealed = await conn.fetchval("SELECT secret FROM workflows")
    assert wf["secret"] not in sealed  # stored sealed, as at creation
