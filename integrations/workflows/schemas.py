"""Request and response bodies of the workflows API (the seed's column names)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from kernel.resources import Name, Text

__all__ = [
    "ExecutionDetail",
    "ExecutionOut",
    "ExecutionStatus",
    "ManualTrigger",
    "StepOut",
    "TriggerAccepted",
    "TriggerType",
    "WorkflowCreate",
    "WorkflowOut",
    "WorkflowStatus",
    "WorkflowUpdate",
    "WorkflowWithSecret",
]

WorkflowStatus = Literal["active", "paused", "archived"]
TriggerType = Literal["event", "schedule", "webhook", "manual"]
ExecutionStatus = Literal["pending", "running", "waiting", "completed", "failed", "cancelled"]


class WorkflowCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/workflows``: ``definition`` is checked against ``GET /v1/workflows/schema``."""

    name: Name
    definition: dict[str, Any]
    trigger_type: TriggerType
    trigger_config: dict[str, Any] = msgspec.field(default_factory=dict)
    description: Text | None = None
    status: WorkflowStatus = "active"


class WorkflowUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """``PATCH /v1/workflows/{workflow_id}``: the fields given change; a new ``definition`` is a new
    version, for new executions only."""

    name: Name | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    definition: dict[str, Any] | UnsetType = UNSET
    trigger_type: TriggerType | UnsetType = UNSET
    trigger_config: dict[str, Any] | UnsetType = UNSET
    status: WorkflowStatus | UnsetType = UNSET


class WorkflowOut(msgspec.Struct):
    """A workflow (without its secret, shown only at creation)."""

    workflow_id: uuid.UUID
    name: str
    description: str | None
    definition: dict[str, Any]
    trigger_type: str
    trigger_config: dict[str, Any]
    status: str
    version: int
    next_run_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class WorkflowWithSecret(WorkflowOut):
    """The answer to creation: ``secret`` (``whsec_...``) signs ``{url}`` webhook steps and verifies
    ``POST /v1/workflows/{workflow_id}/trigger``; it is shown this once."""

    secret: str


class ManualTrigger(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/workflows/{workflow_id}/executions``: the execution's ``trigger`` data."""

    trigger_data: dict[str, Any] = msgspec.field(default_factory=dict)


class StepOut(msgspec.Struct):
    """One step of an execution: its templated input, output, status, attempts and times."""

    step_id: uuid.UUID
    step_name: str
    step_type: str
    input: dict[str, Any]
    output: dict[str, Any] | None
    status: str
    attempts: int
    error_message: str | None
    started_at: dt.datetime
    completed_at: dt.datetime | None


class ExecutionOut(msgspec.Struct):
    """An execution: the definition ``version`` it runs, its next step, when that is due, and the
    attempts made at it."""

    execution_id: uuid.UUID
    workflow_id: uuid.UUID
    version: int
    status: str
    trigger_data: dict[str, Any]
    variables: dict[str, Any]
    result: dict[str, Any] | None
    error_message: str | None
    next_step: str | None
    due_at: dt.datetime | None
    attempts: int
    started_at: dt.datetime
    completed_at: dt.datetime | None


class ExecutionDetail(ExecutionOut):
    """An execution with its steps, in the order they ran."""

    steps: list[StepOut]


class TriggerAccepted(msgspec.Struct):
    """The execution an inbound trigger started; ``duplicate`` when its ``webhook-id`` was seen before."""

    execution_id: uuid.UUID | None
    duplicate: bool
