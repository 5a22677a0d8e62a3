"""Workflows logic: definitions (validated, versioned), executions started by a trigger, and the
operator's reads and actions on executions. Never commits: the boundary (routes, jobs, cli) does.

A definition change writes a new row of ``workflow_versions`` and bumps ``workflows.version``; an
execution keeps the version it started with. Starting is one ``INSERT ... ON CONFLICT DO NOTHING`` on
the executions' unique (workflow, trigger_key) and (workflow, user_key), so a trigger seen twice, by two
processes or after a restart, starts one execution.
"""

from __future__ import annotations

import datetime as dt
import hmac
import time
import uuid
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from integrations import signing
from integrations.workflows import definition as spec
from integrations.workflows import repository as repo
from integrations.workflows import timing
from integrations.workflows.errors import (
    ExecutionNotCancellableError,
    ExecutionNotFoundError,
    ExecutionNotRetryableError,
    InvalidTriggerSignatureError,
    WorkflowNotActiveError,
    WorkflowNotFoundError,
)
from integrations.workflows.schemas import (
    ExecutionDetail,
    ExecutionOut,
    StepOut,
    WorkflowCreate,
    WorkflowOut,
    WorkflowUpdate,
    WorkflowWithSecret,
)
from kernel.errors import Problem, ValidationError
from kernel.pagination import Page, decode_cursor, make_page
from kernel.resources import check_json_object, to_struct

if TYPE_CHECKING:
    import asyncpg

    from kernel.crypto import SecretBox

__all__ = [
    "cancel",
    "create",
    "delete",
    "execution",
    "executions",
    "first_step",
    "get",
    "list_workflows",
    "retry",
    "rotate_secret",
    "start",
    "start_manual",
    "trigger_inbound",
    "update",
    "utcnow",
    "verify_signature",
]

_FINISHED = ("completed", "failed", "cancelled")
SIGNATURE_TOLERANCE = 300  # seconds, as Standard Webhooks recommends


def utcnow() -> dt.datetime:
    """Now, naive UTC (the database's convention)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _invalid(problems: list[Problem]) -> ValidationError:
    return ValidationError("The workflow is not valid.", details=problems)


def _check(definition: Any, trigger_type: str, trigger_config: Any, check_url: Any) -> None:
    check_json_object(definition, "body.definition")
    check_json_object(trigger_config, "body.trigger_config")
    problems = spec.check(definition, check_url=check_url) + spec.check_trigger(trigger_type, trigger_config)
    if problems:
        raise _invalid(problems)


def _next_run(trigger_type: str, config: dict[str, Any], now: dt.datetime) -> dt.datetime | None:
    if trigger_type != "schedule":
        return None
    return timing.next_fire(config["cron"], config.get("timezone", "UTC"), now)


async def create(
    conn: asyncpg.Connection, box: SecretBox, data: WorkflowCreate, check_url: Any = None
) -> WorkflowWithSecret:
    """A new workflow (version 1); the answer holds its secret, shown this once."""
    _check(data.definition, data.trigger_type, data.trigger_config, check_url)
    secret = signing.generate_secret()
    row = await repo.insert_workflow(
        conn,
        {
            "name": data.name,
            "description": data.description,
            "definition": data.definition,
            "trigger_type": data.trigger_type,
            "trigger_config": data.trigger_config,
            "status": data.status,
            "secret": box.seal(secret),
            "next_run_at": _next_run(data.trigger_type, data.trigger_config, utcnow()),
        },
    )
    return WorkflowWithSecret(**{**_fields(row), "secret": secret})


async def rotate_secret(
    conn: asyncpg.Connection, box: SecretBox, workflow_id: uuid.UUID, overlap_seconds: float
) -> WorkflowWithSecret:
    """A new secret, returned once. For ``overlap_seconds`` (the webhooks' rotation overlap, 24 h by
    default) the previous one still verifies inbound triggers, and ``{url}`` webhook steps are signed
    with both."""
    secret = signing.generate_secret()
    row = await repo.rotate_secret(conn, workflow_id, box.seal(secret), overlap_seconds)
    if row is None:
        raise WorkflowNotFoundError("No such workflow.")
    return WorkflowWithSecret(**{**_fields(row), "secret": secret})


def _fields(row: Any) -> dict[str, Any]:
    return {f: row[f] for f in WorkflowOut.__struct_fields__}


async def _workflow(conn: asyncpg.Connection, workflow_id: uuid.UUID, *, lock: bool = False) -> Any:
    row = await repo.get_workflow(conn, workflow_id, lock=lock)
    if row is None:
        raise WorkflowNotFoundError("No such workflow.")
    return row


async def get(conn: asyncpg.Connection, workflow_id: uuid.UUID) -> WorkflowOut:
    """One workflow (404 ``not_found`` if there is none)."""
    return WorkflowOut(**_fields(await _workflow(conn, workflow_id)))


async def list_workflows(
    conn: asyncpg.Connection, *, cursor: str | None, limit: int, status: str | None
) -> Page[WorkflowOut]:
    """Workflows, newest first."""
    after = decode_cursor(cursor, tuple[dt.datetime, uuid.UUID])
    rows = await repo.workflow_page(conn, after, limit, status)
    items = [WorkflowOut(**_fields(r)) for r in rows]
    return make_page(items, limit, lambda w: (w.created_at, w.workflow_id))


async def update(
    conn: asyncpg.Connection, workflow_id: uuid.UUID, data: WorkflowUpdate, check_url: Any = None
) -> WorkflowOut:
    """Change a workflow; a new definition or trigger is a new version (running executions keep theirs)."""
    row = await _workflow(conn, workflow_id, lock=True)
    fields = {f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not UNSET}
    definition = fields.get("definition", row["definition"])
    trigger_type = fields.get("trigger_type", row["trigger_type"])
    trigger_config = fields.get("trigger_config", row["trigger_config"])
    if {"definition", "trigger_type", "trigger_config"} & set(fields):
        _check(definition, trigger_type, trigger_config, check_url)
    if "definition" in fields and definition != row["definition"]:
        fields["version"] = row["version"] + 1
        await repo.insert_version(conn, workflow_id, fields["version"], definition)
    if {"trigger_type", "trigger_config", "status"} & set(fields):
        fields["next_run_at"] = _next_run(trigger_type, trigger_config, utcnow())
    if not fields:
        return WorkflowOut(**_fields(row))
    return WorkflowOut(**_fields(await repo.update_workflow(conn, workflow_id, fields)))


async def delete(conn: asyncpg.Connection, workflow_id: uuid.UUID) -> None:
    """Archive a workflow: it starts nothing more; its executions (and their history) stay."""
    await _workflow(conn, workflow_id, lock=True)
    await repo.update_workflow(conn, workflow_id, {"status": "archived", "next_run_at": None})


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    return str(value)


def first_step(definition: dict[str, Any]) -> str:
    """The name of the definition's first step."""
    name: str = definition["steps"][0]["name"]
    return name


async def start(
    conn: asyncpg.Connection,
    workflow: Any,
    trigger_data: dict[str, Any],
    now: dt.datetime,
    *,
    trigger_key: str | None = None,
    user_key: str | None = None,
) -> uuid.UUID | None:
    """Start one execution of ``workflow`` (a row with id, version); None if its keys were seen."""
    definition = await repo.get_version(conn, workflow["workflow_id"], workflow["version"])
    ids = await repo.start_executions(
        conn,
        [
            (
                workflow["workflow_id"],
                workflow["version"],
                _json_safe(trigger_data),
                trigger_key,
                user_key,
                first_step(definition),
                now,
            )
        ],
    )
    return ids[0] if ids else None


async def start_manual(
    conn: asyncpg.Connection, workflow_id: uuid.UUID, trigger_data: dict[str, Any]
) -> ExecutionOut:
    """``POST /v1/workflows/{id}/executions``: a new execution of an active workflow, due now."""
    check_json_object(trigger_data, "body.trigger_data")
    row = await _workflow(conn, workflow_id)
    if row["status"] != "active":
        raise WorkflowNotActiveError(f"The workflow is {row['status']}.")
    execution_id = await start(conn, row, trigger_data, utcnow())
    assert execution_id is not None  # no keys: never a conflict
    return to_struct(ExecutionOut, await repo.get_execution(conn, execution_id))


def _secrets(box: SecretBox, row: Any) -> list[str]:
    """The workflow's secret and, during a rotation's overlap, its previous one (``get_workflow``)."""
    sealed = [row["secret"], row["previous_secret"]]
    return [box.open(s) for s in sealed if s is not None]


def verify_signature(
    secrets: list[str], headers: dict[str, str], body: bytes, now: float | None = None
) -> str:
    """The ``webhook-id`` of a Standard Webhooks request signed with one of ``secrets``; raises 401
    otherwise."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "").split()
    if not msg_id or len(msg_id) > 200 or not stamp.isdigit() or not signatures:
        raise InvalidTriggerSignatureError("Send webhook-id, webhook-timestamp and webhook-signature.")
    if abs((now or time.time()) - int(stamp)) > SIGNATURE_TOLERANCE:
        raise InvalidTriggerSignatureError("webhook-timestamp is more than 5 minutes away.")
    expected = [signing.sign(key, msg_id, int(stamp), body) for key in secrets]
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise InvalidTriggerSignatureError("The signature does not match.")
    return msg_id


async def trigger_inbound(
    conn: asyncpg.Connection,
    box: SecretBox,
    workflow_id: uuid.UUID,
    headers: dict[str, str],
    body: bytes,
    payload: dict[str, Any],
) -> tuple[uuid.UUID | None, bool]:
    """A signed inbound POST starts an execution of a webhook-triggered workflow, once per
    ``webhook-id``; (execution id, duplicate)."""
    row = await repo.get_workflow(conn, workflow_id)
    if row is None or row["trigger_type"] != "webhook" or row["secret"] is None:
        raise WorkflowNotFoundError("No such webhook-triggered workflow.")
    msg_id = verify_signature(_secrets(box, row), headers, body)
    if row["status"] != "active":
        raise WorkflowNotActiveError(f"The workflow is {row['status']}.")
    check_json_object(payload, "body")
    execution_id = await start(conn, row, payload, utcnow(), trigger_key=f"webhook:{msg_id}")
    return execution_id, execution_id is None


async def executions(
    conn: asyncpg.Connection, workflow_id: uuid.UUID, *, cursor: str | None, limit: int, status: str | None
) -> Page[ExecutionOut]:
    """A workflow's executions, newest first."""
    await _workflow(conn, workflow_id)
    after = decode_cursor(cursor, tuple[dt.datetime, uuid.UUID])
    rows = await repo.execution_page(conn, workflow_id, after, limit, status)
    return make_page(
        [to_struct(ExecutionOut, r) for r in rows], limit, lambda e: (e.started_at, e.execution_id)
    )


async def execution(conn: asyncpg.Connection, execution_id: uuid.UUID) -> ExecutionDetail:
    """One execution with its steps."""
    row = await repo.get_execution(conn, execution_id)
    if row is None:
        raise ExecutionNotFoundError("No such workflow execution.")
    steps = [
        StepOut(**{f: s[f] for f in StepOut.__struct_fields__})
        for s in await repo.steps_of(conn, execution_id)
    ]
    return ExecutionDetail(**{f: row[f] for f in ExecutionOut.__struct_fields__}, steps=steps)


async def cancel(conn: asyncpg.Connection, execution_id: uuid.UUID) -> ExecutionDetail:
    """Cancel a pending, running or waiting execution (waits for a runner holding it to finish its step)."""
    row = await repo.get_execution(conn, execution_id, lock=True)
    if row is None:
        raise ExecutionNotFoundError("No such workflow execution.")
    if row["status"] in _FINISHED:
        raise ExecutionNotCancellableError(f"The execution is already {row['status']}.")
    await repo.update_execution(
        conn, execution_id, {"status": "cancelled", "completed_at": utcnow(), "due_at": None}
    )
    return await execution(conn, execution_id)


async def retry(conn: asyncpg.Connection, execution_id: uuid.UUID) -> ExecutionDetail:
    """Run a failed execution again from its failed step (the steps before it are not repeated)."""
    row = await repo.get_execution(conn, execution_id, lock=True)
    if row is None:
        raise ExecutionNotFoundError("No such workflow execution.")
    if row["status"] != "failed" or row["next_step"] is None:
        raise ExecutionNotRetryableError(f"The execution is {row['status']}; only a failed one is retried.")
    await repo.update_execution(
        conn,
        execution_id,
        {"status": "running", "due_at": utcnow(), "attempts": 0, "error_message": None, "completed_at": None},
    )
    return await execution(conn, execution_id)
