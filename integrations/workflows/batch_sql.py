"""SQL of the runner's batch (``batch``): the step rows of many executions, and a batch's step rows and
execution states written in one statement. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from integrations.models import WorkflowExecutionStep
from kernel.resources import columns, fetch_all

if TYPE_CHECKING:
    import asyncpg

__all__ = ["EXECUTION_STATE", "STEP_ROW", "record_batch", "steps_of_many"]

Row = Any  # asyncpg.Record
_STEP_COLUMNS = columns(WorkflowExecutionStep.__table__)


async def steps_of_many(conn: asyncpg.Connection, execution_ids: list[uuid.UUID]) -> list[Row]:
    """The steps of several executions, each execution's in the order they started."""
    return await fetch_all(
        conn,
        f"""SELECT {_STEP_COLUMNS} FROM workflow_execution_steps WHERE execution_id = ANY($1::uuid[])
            ORDER BY execution_id, started_at, step_id""",
        execution_ids,
    )


STEP_ROW = (
    "step_id", "execution_id", "step_name", "step_type", "input", "output", "status", "error_message",
    "attempts", "started_at", "completed_at",
)  # fmt: skip
EXECUTION_STATE = (
    "execution_id", "status", "next_step", "attempts", "variables", "due_at", "wait_event", "wait_user",
    "completed_at", "result",
)  # fmt: skip
_STEP_TYPES = (
    "uuid",
    "uuid",
    "text",
    "text",
    "jsonb",
    "jsonb",
    "text",
    "text",
    "int",
    "timestamp",
    "timestamp",
)
_STATE_TYPES = ("uuid", "text", "text", "int", "jsonb", "timestamp", "text", "text", "timestamp", "jsonb")


def _arrays(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    return [[r[n] for r in rows] for n in names]


async def record_batch(
    conn: asyncpg.Connection, steps: Sequence[dict[str, Any]], states: Sequence[dict[str, Any]]
) -> None:
    """Upsert the step rows ``steps`` (the columns ``STEP_ROW``) and set each execution's state
    (``EXECUTION_STATE``) in one statement: a runner's batch is one round trip."""
    n = len(STEP_ROW)
    step_params = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_STEP_TYPES))
    state_params = ", ".join(f"${n + i + 1}::{t}[]" for i, t in enumerate(_STATE_TYPES))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in STEP_ROW[3:])
    sets = ", ".join(f"{c} = x.{c}" for c in EXECUTION_STATE[1:])
    await conn.execute(
        f"""WITH s AS (
              INSERT INTO workflow_execution_steps ({", ".join(STEP_ROW)})
              SELECT * FROM unnest({step_params})
              ON CONFLICT (execution_id, step_name) DO UPDATE SET {updates})
            UPDATE workflow_executions e SET {sets}
            FROM unnest({state_params}) AS x({", ".join(EXECUTION_STATE)})
            WHERE e.execution_id = x.execution_id""",
        *_arrays(steps, STEP_ROW),
        *_arrays(states, EXECUTION_STATE),
    )
