"""HTTP API of workflows (admin): ``/v1/workflows`` and ``/v1/workflow-executions``.

``POST /v1/workflows/{workflow_id}/trigger`` is the one route without a Bearer token: it is signed
with the workflow's secret (Standard Webhooks headers), like the webhooks this service sends.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from integrations import service as webhooks
from integrations.workflows import definition, service
from integrations.workflows.schemas import (
    ExecutionDetail,
    ExecutionOut,
    ExecutionStatus,
    ManualTrigger,
    TriggerAccepted,
    WorkflowCreate,
    WorkflowOut,
    WorkflowStatus,
    WorkflowUpdate,
    WorkflowWithSecret,
)
from kernel.auth import require_role
from kernel.crypto import SecretBox
from kernel.deps import CurrentUser, DbConn
from kernel.errors import ValidationError
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page
from kernel.problems import not_json, wrong_type
from kernel.resources import ResourceController

__all__ = ["route_handlers"]


def _box(request: Request[Any, Any, Any]) -> SecretBox:
    box: SecretBox = request.app.state.webhook_box
    return box


def _url_check(request: Request[Any, Any, Any]) -> Any:
    """The webhooks' target check (scheme, credentials, the SSRF guard) as ``url -> reason | None``."""
    config = request.app.state.webhook_config

    def check(url: str) -> str | None:
        try:
            webhooks.check_target(url, config)
        except ValidationError as exc:
            return str((exc.details or [{}])[0].get("message", exc.message))
        return None

    return check


class WorkflowsController(ResourceController):
    """Workflow definitions, their executions and triggers (admin)."""

    path = "/v1/workflows"
    tags = ["workflows"]

    @post("/", status_code=201)
    async def create(
        self,
        request: Request[Any, Any, Any],
        conn: DbConn,
        current_user: CurrentUser,
        data: JSONBody[WorkflowCreate],
    ) -> WorkflowWithSecret:
        """Create a workflow; the answer holds its signing secret, shown this once.

        The definition is checked against ``GET /v1/workflows/schema``; every problem is a 422 detail
        naming the step and field (``body.definition.steps[2].input.if``)."""
        require_role(current_user, "admin")
        return await service.create(conn, _box(request), data, _url_check(request))

    @get("/")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        status: FromQuery[WorkflowStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[WorkflowOut]:
        """Workflows, newest first, optionally in one ``status``."""
        require_role(current_user, "admin")
        return await service.list_workflows(conn, cursor=cursor, limit=limit, status=status)

    @get("/schema")
    async def schema(self, current_user: CurrentUser) -> dict[str, Any]:
        """The JSON Schema (Draft 2020-12) of a workflow definition, with each trigger type's config
        under ``$defs``."""
        require_role(current_user, "admin")
        return definition.SCHEMA

    @get("/{workflow_id:uuid}")
    async def get_one(
        self, workflow_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> WorkflowOut:
        """One workflow (without its secret)."""
        require_role(current_user, "admin")
        return await service.get(conn, workflow_id)

    @patch("/{workflow_id:uuid}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        workflow_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        data: JSONBody[WorkflowUpdate],
    ) -> WorkflowOut:
        """Change a workflow; a new definition is a new ``version``, used by new executions only."""
        require_role(current_user, "admin")
        return await service.update(conn, workflow_id, data, _url_check(request))

    @delete("/{workflow_id:uuid}")
    async def remove(self, workflow_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser) -> None:
        """Archive a workflow: it starts no execution; its executions stay readable."""
        require_role(current_user, "admin")
        await service.delete(conn, workflow_id)

    @post("/{workflow_id:uuid}/rotate-secret", status_code=200)
    async def rotate_secret(
        self,
        request: Request[Any, Any, Any],
        workflow_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
    ) -> WorkflowWithSecret:
        """A new secret for the workflow, shown this once. For 24 hours the old one still verifies
        inbound triggers, and ``{url}`` webhook steps are signed with both."""
        require_role(current_user, "admin")
        overlap = request.app.state.webhook_config.numbers.rotation_overlap_seconds
        return await service.rotate_secret(conn, _box(request), workflow_id, overlap)

    @get("/{workflow_id:uuid}/executions")
    async def executions(
        self,
        workflow_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        status: FromQuery[ExecutionStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[ExecutionOut]:
        """The workflow's executions, newest first, optionally in one ``status``."""
        require_role(current_user, "admin")
        return await service.executions(conn, workflow_id, cursor=cursor, limit=limit, status=status)

    @post("/{workflow_id:uuid}/executions", status_code=201)
    async def start(
        self,
        workflow_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        data: JSONBody[ManualTrigger],
    ) -> ExecutionOut:
        """Start an execution now (a manual trigger), with ``trigger_data`` as its ``trigger``."""
        require_role(current_user, "admin")
        return await service.start_manual(conn, workflow_id, data.trigger_data)

    @post("/{workflow_id:uuid}/trigger", status_code=202)
    async def trigger(
        self, request: Request[Any, Any, Any], workflow_id: FromPath[uuid.UUID], conn: DbConn
    ) -> TriggerAccepted:
        """Start an execution of a webhook-triggered workflow from a signed POST.

        Sign as Standard Webhooks do, with the workflow's secret: ``webhook-id``, ``webhook-timestamp``
        (within 5 minutes) and ``webhook-signature``. The JSON object body is the execution's
        ``trigger``; a ``webhook-id`` seen before starts nothing (``duplicate``)."""
        body = await request.body()
        try:
            payload = msgspec.json.decode(body) if body else {}
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            raise not_json(body, exc) from None  # as on every route (docs/errors.md)
        if not isinstance(payload, dict):
            raise wrong_type(payload)
        headers = {k.lower(): v for k, v in request.headers.items()}
        execution_id, duplicate = await service.trigger_inbound(
            conn, _box(request), workflow_id, headers, body, payload
        )
        return TriggerAccepted(execution_id=execution_id, duplicate=duplicate)


class ExecutionsController(ResourceController):
    """One workflow execution: its steps, cancel, retry (admin)."""

    path = "/v1/workflow-executions"
    tags = ["workflows"]

    @get("/{execution_id:uuid}")
    async def get_one(
        self, execution_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> ExecutionDetail:
        """One execution with its steps (input, output, status, attempts, times)."""
        require_role(current_user, "admin")
        return await service.execution(conn, execution_id)

    @post("/{execution_id:uuid}/cancel", status_code=200)
    async def cancel(
        self, execution_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> ExecutionDetail:
        """Cancel a pending, running or waiting execution; its remaining steps do not run."""
        require_role(current_user, "admin")
        return await service.cancel(conn, execution_id)

    @post("/{execution_id:uuid}/retry", status_code=200)
    async def retry(
        self, execution_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> ExecutionDetail:
        """Run a failed execution again from its failed step; the steps before it are not repeated."""
        require_role(current_user, "admin")
        return await service.retry(conn, execution_id)


route_handlers: list[Any] = [WorkflowsController, ExecutionsController]
