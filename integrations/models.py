"""Tables of the integrations domain: the seed's webhooks (with delivery state) and workflows (tables only)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = [
    "Webhook",
    "WebhookDelivery",
    "Workflow",
    "WorkflowExecution",
    "WorkflowExecutionStep",
    "WorkflowVersion",
    "WorkflowWatermark",
]


class Webhook(col.Timestamps, Base):
    __tablename__ = "webhooks"
    __table_args__ = col.indexes("webhooks", "client_id", "event_type", "status")

    webhook_id: Mapped[uuid.UUID] = col.pk_column()
    client_id: Mapped[str] = mapped_column(String(255), nullable=False)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    target_url: Mapped[str] = mapped_column(String(255), nullable=False)
    secret: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = col.status_column("active")
    # Additions (docs/schema.md, "Webhooks"): ``secret`` holds the Fernet token of the signing secret;
    # during a rotation the previous one signs too until it expires; ``failing_since`` is the first
    # failure since the last success (the endpoint is disabled when it is 5 days old).
    previous_secret: Mapped[str | None] = mapped_column(String(255))
    previous_secret_expires_at: Mapped[dt.datetime | None] = col.time_column()
    failing_since: Mapped[dt.datetime | None] = col.time_column()


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        *col.indexes("webhook_deliveries", "event_type", "status", "queued_at"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_webhook_deliveries_leased",
            "webhook_id",
            "locked_until",
            postgresql_where=text("status = 'processing'"),
        ),
        Index("ix_webhook_deliveries_webhook_id_queued_at", "webhook_id", "queued_at", "delivery_id"),
    )

    delivery_id: Mapped[uuid.UUID] = col.pk_column()
    webhook_id: Mapped[uuid.UUID] = col.ref_column("webhooks.webhook_id")
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = col.status_column("pending")
    response_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[dt.datetime] = col.created_column()
    processing_started_at: Mapped[dt.datetime | None] = col.time_column()
    delivered_at: Mapped[dt.datetime | None] = col.time_column()
    failed_at: Mapped[dt.datetime | None] = col.time_column()
    # Additions: the event (its id is the ``webhook-id`` of every attempt), attempts made, when the
    # next is due, and the sending process's lease (expired: the attempt is retried).
    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), nullable=False, server_default=func.gen_random_uuid()
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime] = col.created_column()
    locked_until: Mapped[dt.datetime | None] = col.time_column()


class Workflow(col.Timestamps, Base):
    __tablename__ = "workflows"
    __table_args__ = (
        *col.indexes("workflows", "trigger_type", "status"),
        Index(
            "ix_workflows_next_run_at",
            "next_run_at",
            postgresql_where=text("trigger_type = 'schedule' AND status = 'active'"),
        ),
    )

    workflow_id: Mapped[uuid.UUID] = col.pk_column()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    trigger_type: Mapped[str] = mapped_column(String(50), nullable=False)
    trigger_config: Mapped[dict[str, Any]] = col.json_column()
    status: Mapped[str] = col.status_column("active")
    # Additions (migration 0014, docs/workflows.md): the sealed signing secret, the definition's
    # version (workflow_versions), a schedule's next fire time.
    secret: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    # Migration 0018: after a rotation, the previous sealed secret verifies triggers until it expires.
    previous_secret: Mapped[str | None] = mapped_column(String(255))
    previous_secret_expires_at: Mapped[dt.datetime | None] = col.time_column()
    next_run_at: Mapped[dt.datetime | None] = col.time_column()


class WorkflowExecution(Base):
    __tablename__ = "workflow_executions"
    __table_args__ = (
        *col.indexes("workflow_executions", "status", "started_at", "completed_at"),
        Index(
            "ix_workflow_executions_due",
            "due_at",
            postgresql_where=text("status IN ('pending', 'running', 'waiting')"),
        ),
        Index(
            "ix_workflow_executions_waiting",
            "wait_event",
            "wait_user",
            postgresql_where=text("status = 'waiting'"),
        ),
        Index("uq_workflow_executions_workflow_id_trigger_key", "workflow_id", "trigger_key", unique=True),
        Index("uq_workflow_executions_workflow_id_user_key", "workflow_id", "user_key", unique=True),
        Index("ix_workflow_executions_workflow_id_started_at", "workflow_id", "started_at", "execution_id"),
    )

    execution_id: Mapped[uuid.UUID] = col.pk_column()
    workflow_id: Mapped[uuid.UUID] = col.ref_column("workflows.workflow_id")
    trigger_data: Mapped[dict[str, Any]] = col.json_column()
    variables: Mapped[dict[str, Any]] = col.json_column()
    status: Mapped[str] = col.status_column("pending")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = col.created_column()
    completed_at: Mapped[dt.datetime | None] = col.time_column()
    # Additions (migration 0014): the definition version, the runner's queue (next step, when due,
    # attempts of that step), trigger dedupe keys, and what a wait_for_event step waits for.
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    next_step: Mapped[str | None] = mapped_column(String(255))
    due_at: Mapped[dt.datetime | None] = col.time_column()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    trigger_key: Mapped[str | None] = mapped_column(String(255))
    user_key: Mapped[str | None] = mapped_column(String(255))
    wait_event: Mapped[str | None] = mapped_column(String(100))
    wait_user: Mapped[str | None] = mapped_column(String(255))


class WorkflowExecutionStep(Base):
    __tablename__ = "workflow_execution_steps"
    __table_args__ = (
        *col.indexes("workflow_execution_steps", "step_type", "status", "started_at"),
        Index("uq_workflow_execution_steps_execution_id_step_name", "execution_id", "step_name", unique=True),
    )

    step_id: Mapped[uuid.UUID] = col.pk_column()
    execution_id: Mapped[uuid.UUID] = col.ref_column("workflow_executions.execution_id")
    step_name: Mapped[str] = mapped_column(String(255), nullable=False)
    step_type: Mapped[str] = mapped_column(String(50), nullable=False)
    input: Mapped[dict[str, Any]] = col.json_column()
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = col.status_column("pending")
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = col.created_column()
    completed_at: Mapped[dt.datetime | None] = col.time_column()
    # Addition (migration 0014): attempts made at the step (retries with backoff up to its limit).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))


# --- Additions (not in the seed; see docs/schema.md) -------------------------------------------


class WorkflowVersion(Base):
    """Every definition a workflow has had (migration 0014): executions run the one they started with."""

    __tablename__ = "workflow_versions"

    workflow_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflows.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[dt.datetime] = col.created_column()


class WorkflowWatermark(Base):
    """How far the workflows' event matcher has read ``analytics_events`` (created_at, event_id)."""

    __tablename__ = "workflow_watermarks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    position_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    updated_at: Mapped[dt.datetime] = col.created_column()
