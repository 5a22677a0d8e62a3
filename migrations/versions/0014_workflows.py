"""Workflows: what durable executions need on the seed's workflow tables.

- ``workflows``: the sealed secret of the workflow's own signatures (inbound triggers, ``{url}``
  webhook steps), the definition's ``version``, and a schedule's next fire time.
- ``workflow_versions``: every definition a workflow has had; an execution runs the version it
  started with.
- ``workflow_executions``: the version, the next step and when it is due (the runner's queue), the
  attempts of that step, the trigger's dedupe keys (one execution per (workflow, event), and per user
  for ``once_per_user``), and what a ``wait_for_event`` step waits for.
- ``workflow_execution_steps``: attempts; one row per (execution, step name).
- ``workflow_watermarks``: how far the event matcher has read ``analytics_events``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("CURRENT_TIMESTAMP")
_ZERO = sa.text("0")
_ONE = sa.text("1")


def _executions() -> None:
    for name, column in (
        ("version", sa.Column("version", sa.Integer(), server_default=_ONE, nullable=False)),
        ("next_step", sa.Column("next_step", sa.String(length=255), nullable=True)),
        ("due_at", sa.Column("due_at", postgresql.TIMESTAMP(), nullable=True)),
        ("attempts", sa.Column("attempts", sa.Integer(), server_default=_ZERO, nullable=False)),
        ("trigger_key", sa.Column("trigger_key", sa.String(length=255), nullable=True)),
        ("user_key", sa.Column("user_key", sa.String(length=255), nullable=True)),
        ("wait_event", sa.Column("wait_event", sa.String(length=100), nullable=True)),
        ("wait_user", sa.Column("wait_user", sa.String(length=255), nullable=True)),
    ):
        assert column.name == name
        op.add_column("workflow_executions", column)
    op.create_index(
        "ix_workflow_executions_due",
        "workflow_executions",
        ["due_at"],
        postgresql_where=sa.text("status IN ('pending', 'running', 'waiting')"),
    )
    op.create_index(
        "ix_workflow_executions_waiting",
        "workflow_executions",
        ["wait_event", "wait_user"],
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.create_index(
        "uq_workflow_executions_workflow_id_trigger_key",
        "workflow_executions",
        ["workflow_id", "trigger_key"],
        unique=True,
    )
    op.create_index(
        "uq_workflow_executions_workflow_id_user_key",
        "workflow_executions",
        ["workflow_id", "user_key"],
        unique=True,
    )
    op.create_index(
        "ix_workflow_executions_workflow_id_started_at",
        "workflow_executions",
        ["workflow_id", "started_at", "execution_id"],
    )


def upgrade() -> None:
    op.add_column("workflows", sa.Column("secret", sa.String(length=255), nullable=True))
    op.add_column("workflows", sa.Column("version", sa.Integer(), server_default=_ONE, nullable=False))
    op.add_column("workflows", sa.Column("next_run_at", postgresql.TIMESTAMP(), nullable=True))
    op.create_index(
        "ix_workflows_next_run_at",
        "workflows",
        ["next_run_at"],
        postgresql_where=sa.text("trigger_type = 'schedule' AND status = 'active'"),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("workflow_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.workflow_id"],
            name=op.f("fk_workflow_versions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "version", name=op.f("pk_workflow_versions")),
    )
    op.create_table(
        "workflow_watermarks",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position_at", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("position_id", sa.UUID(), nullable=False),
        sa.Column("updated_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workflow_watermarks")),
    )
    _executions()
    op.add_column(
        "workflow_execution_steps",
        sa.Column("attempts", sa.Integer(), server_default=_ZERO, nullable=False),
    )
    op.create_index(
        "uq_workflow_execution_steps_execution_id_step_name",
        "workflow_execution_steps",
        ["execution_id", "step_name"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_workflow_execution_steps_execution_id_step_name", "workflow_execution_steps")
    op.drop_column("workflow_execution_steps", "attempts")
    for index in (
        "ix_workflow_executions_workflow_id_started_at",
        "uq_workflow_executions_workflow_id_user_key",
        "uq_workflow_executions_workflow_id_trigger_key",
        "ix_workflow_executions_waiting",
        "ix_workflow_executions_due",
    ):
        op.drop_index(index, "workflow_executions")
    for column in (
        "wait_user",
        "wait_event",
        "user_key",
        "trigger_key",
        "attempts",
        "due_at",
        "next_step",
        "version",
    ):
        op.drop_column("workflow_executions", column)
    op.drop_table("workflow_watermarks")
    op.drop_table("workflow_versions")
    op.drop_index("ix_workflows_next_run_at", "workflows")
    for column in ("next_run_at", "version", "secret"):
        op.drop_column("workflows", column)
