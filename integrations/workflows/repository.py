"""SQL of workflows, their versions and executions. Never commits: callers own the transaction.

Reads of ingest's events are in ``events_sql``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from integrations.models import Workflow, WorkflowExecution, WorkflowExecutionStep
from kernel.resources import columns, fetch_all, row_count, set_clause

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "WORKFLOW_COLUMNS",
    "active_webhook",
    "claim_due",
    "due_schedules",
    "event_workflows",
    "execution_page",
    "get_execution",
    "get_step",
    "get_version",
    "get_watermark",
    "get_workflow",
    "init_watermark",
    "insert_version",
    "insert_workflow",
    "record_step",
    "rotate_secret",
    "set_watermark",
    "start_executions",
    "steps_of",
    "update_execution",
    "update_workflow",
    "upsert_step",
    "waited_events",
    "wake_waiting",
    "workflow_endpoint",
    "workflow_page",
]

Row = Any  # asyncpg.Record
WORKFLOW_COLUMNS = columns(
    Workflow.__table__, exclude=("secret", "previous_secret", "previous_secret_expires_at")
)
_NOW = "(now() AT TIME ZONE 'UTC')"
_EXECUTION_COLUMNS = columns(
    WorkflowExecution.__table__, exclude=("trigger_key", "user_key", "wait_event", "wait_user")
)
_STEP_COLUMNS = columns(WorkflowExecutionStep.__table__)
_RUNNABLE = "('pending', 'running', 'waiting')"


async def insert_workflow(conn: asyncpg.Connection, values: dict[str, Any]) -> Row:
    """A new workflow (version 1) and its first definition version."""
    names = list(values)
    row = await conn.fetchrow(
        f"""INSERT INTO workflows ({", ".join(names)}) VALUES ({", ".join(f"${i + 1}" for i in range(len(names)))})
            RETURNING {WORKFLOW_COLUMNS}""",
        *values.values(),
    )
    await insert_version(conn, row["workflow_id"], 1, values["definition"])
    return row


async def insert_version(
    conn: asyncpg.Connection, workflow_id: uuid.UUID, version: int, definition: Any
) -> None:
    """Record definition ``version`` of a workflow."""
    await conn.execute(
        "INSERT INTO workflow_versions (workflow_id, version, definition) VALUES ($1, $2, $3)",
        workflow_id,
        version,
        definition,
    )


async def get_version(conn: asyncpg.Connection, workflow_id: uuid.UUID, version: int) -> Any:
    """The definition of one version (None if there is no such version)."""
    return await conn.fetchval(
        "SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
        workflow_id,
        version,
    )


async def get_workflow(conn: asyncpg.Connection, workflow_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    """One workflow, with its sealed ``secret`` and, while a rotation's overlap lasts, the sealed
    ``previous_secret`` (else None); ``lock`` takes its row lock."""
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow(
        f"""SELECT {WORKFLOW_COLUMNS}, secret,
                   CASE WHEN previous_secret_expires_at > {_NOW} THEN previous_secret END AS previous_secret
            FROM workflows WHERE workflow_id = $1{suffix}""",
        workflow_id,
    )


async def rotate_secret(
    conn: asyncpg.Connection, workflow_id: uuid.UUID, sealed: str, overlap_seconds: float
) -> Row | None:
    """Make ``sealed`` the workflow's secret, the current one its previous secret for
    ``overlap_seconds``, and do the same on the endpoints of its ``{url}`` webhook steps (client
    ``workflow:<id>``), which then sign with both; the workflow after (None if there is none)."""
    row = await conn.fetchrow(
        f"""UPDATE workflows SET previous_secret = secret, secret = $2,
                previous_secret_expires_at = {_NOW} + make_interval(secs => $3), updated_at = {_NOW}
            WHERE workflow_id = $1 RETURNING {WORKFLOW_COLUMNS}""",
        workflow_id,
        sealed,
        overlap_seconds,
    )
    if row is not None:
        await conn.execute(
            f"""UPDATE webhooks SET previous_secret = secret, secret = $2,
                    previous_secret_expires_at = {_NOW} + make_interval(secs => $3), updated_at = {_NOW}
                WHERE client_id = $1""",
            f"workflow:{workflow_id}",
            sealed,
            overlap_seconds,
        )
    return row


async def workflow_page(
    conn: asyncpg.Connection, after: tuple[dt.datetime, uuid.UUID] | None, limit: int, status: str | None
) -> list[Row]:
    """Up to ``limit + 1`` workflows, newest first, after the key ``after``."""
    at, wid = after if after else (None, None)
    return await fetch_all(
        conn,
        f"""SELECT {WORKFLOW_COLUMNS} FROM workflows
            WHERE ($1::text IS NULL OR status = $1)
              AND ($2::timestamp IS NULL OR (created_at, workflow_id) < ($2, $3))
            ORDER BY created_at DESC, workflow_id DESC LIMIT $4""",
        status,
        at,
        wid,
        limit + 1,
    )


async def update_workflow(
    conn: asyncpg.Connection, workflow_id: uuid.UUID, fields: dict[str, Any]
) -> Row | None:
    """Set ``fields`` (and ``updated_at``); the row after, or None if there is no such workflow."""
    clause, args = set_clause(fields, first_param=2)
    return await conn.fetchrow(
        f"""UPDATE workflows SET {clause} WHERE workflow_id = $1
            RETURNING {WORKFLOW_COLUMNS}""",
        workflow_id,
        *args,
    )


async def event_workflows(conn: asyncpg.Connection) -> list[Row]:
    """The active event-triggered workflows: id, version, trigger_config, created_at and the current
    version's first step."""
    return await fetch_all(
        conn,
        """SELECT w.workflow_id, w.version, w.trigger_config, w.created_at,
                  v.definition -> 'steps' -> 0 ->> 'name' AS first_step
           FROM workflows w JOIN workflow_versions v USING (workflow_id, version)
           WHERE w.trigger_type = 'event' AND w.status = 'active'""",
    )


async def waited_events(conn: asyncpg.Connection) -> list[str]:
    """The event names waiting executions wait for."""
    rows = await fetch_all(
        conn,
        "SELECT DISTINCT wait_event FROM workflow_executions WHERE status = 'waiting' AND wait_event IS NOT NULL",
    )
    return [r["wait_event"] for r in rows]


async def due_schedules(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[Row]:
    """Active schedules due by ``now``, locked (SKIP LOCKED: another runner fires the others)."""
    return await fetch_all(
        conn,
        """SELECT workflow_id, version, trigger_config, next_run_at FROM workflows
           WHERE trigger_type = 'schedule' AND status = 'active' AND next_run_at <= $1
           ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )


async def start_executions(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> list[uuid.UUID]:
    """Insert executions ``(workflow_id, version, trigger_data, trigger_key, user_key, first_step,
    due_at)``; one whose (workflow, trigger_key) or (workflow, user_key) exists is skipped. The new ids."""
    if not rows:
        return []
    records = await fetch_all(
        conn,
        """INSERT INTO workflow_executions
             (workflow_id, version, trigger_data, trigger_key, user_key, next_step, due_at, status)
           SELECT w, v, d, k, u, s, t, 'pending'
           FROM unnest($1::uuid[], $2::int[], $3::jsonb[], $4::text[], $5::text[], $6::text[], $7::timestamp[])
             AS x(w, v, d, k, u, s, t)
           ON CONFLICT DO NOTHING RETURNING execution_id""",
        *[list(col) for col in zip(*rows, strict=True)],
    )
    return [r["execution_id"] for r in records]


async def claim_due(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[Row]:
    """Lock up to ``limit`` executions whose next step is due by ``now`` (SKIP LOCKED)."""
    return await fetch_all(
        conn,
        f"""SELECT {_EXECUTION_COLUMNS}, wait_event, wait_user FROM workflow_executions
            WHERE status IN {_RUNNABLE} AND due_at <= $1
            ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )


async def get_execution(
    conn: asyncpg.Connection, execution_id: uuid.UUID, *, lock: bool = False
) -> Row | None:
    """One execution (``lock``: with its row lock, waiting for a runner holding it)."""
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow(
        f"SELECT {_EXECUTION_COLUMNS} FROM workflow_executions WHERE execution_id = $1{suffix}", execution_id
    )


async def execution_page(
    conn: asyncpg.Connection,
    workflow_id: uuid.UUID | None,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    status: str | None,
) -> list[Row]:
    """Up to ``limit + 1`` executions (of one workflow, when given), newest first, after ``after``."""
    at, eid = after if after else (None, None)
    return await fetch_all(
        conn,
        f"""SELECT {_EXECUTION_COLUMNS} FROM workflow_executions
            WHERE ($1::uuid IS NULL OR workflow_id = $1) AND ($2::text IS NULL OR status = $2)
              AND ($3::timestamp IS NULL OR (started_at, execution_id) < ($3, $4))
            ORDER BY started_at DESC, execution_id DESC LIMIT $5""",
        workflow_id,
        status,
        at,
        eid,
        limit + 1,
    )


async def update_execution(conn: asyncpg.Connection, execution_id: uuid.UUID, fields: dict[str, Any]) -> None:
    """Set ``fields`` of an execution."""
    clause = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(
        f"UPDATE workflow_executions SET {clause} WHERE execution_id = $1", execution_id, *fields.values()
    )


async def steps_of(conn: asyncpg.Connection, execution_id: uuid.UUID) -> list[Row]:
    """An execution's steps in the order they started."""
    return await fetch_all(
        conn,
        f"""SELECT {_STEP_COLUMNS} FROM workflow_execution_steps WHERE execution_id = $1
            ORDER BY started_at, step_id""",
        execution_id,
    )


async def get_step(conn: asyncpg.Connection, execution_id: uuid.UUID, name: str) -> Row | None:
    """The row of step ``name`` of an execution, if it was reached."""
    return await conn.fetchrow(
        f"SELECT {_STEP_COLUMNS} FROM workflow_execution_steps WHERE execution_id = $1 AND step_name = $2",
        execution_id,
        name,
    )


async def upsert_step(conn: asyncpg.Connection, values: dict[str, Any]) -> uuid.UUID:
    """Insert or update the row of (execution_id, step_name) with ``values``; its step_id."""
    names = list(values)
    updates = ", ".join(
        f"{n} = EXCLUDED.{n}" for n in names if n not in ("execution_id", "step_name", "step_id")
    )
    step_id: uuid.UUID = await conn.fetchval(
        f"""INSERT INTO workflow_execution_steps ({", ".join(names)})
            VALUES ({", ".join(f"${i + 1}" for i in range(len(names)))})
            ON CONFLICT (execution_id, step_name) DO UPDATE SET {updates} RETURNING step_id""",
        *values.values(),
    )
    return step_id


async def record_step(conn: asyncpg.Connection, step: dict[str, Any], fields: dict[str, Any]) -> None:
    """``upsert_step`` and ``update_execution`` (of the step's execution) in one statement."""
    names = list(step)
    n = len(names)
    updates = ", ".join(
        f"{c} = EXCLUDED.{c}" for c in names if c not in ("execution_id", "step_name", "step_id")
    )
    clause = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=n + 1))
    await conn.execute(
        f"""WITH s AS (
              INSERT INTO workflow_execution_steps ({", ".join(names)})
              VALUES ({", ".join(f"${i + 1}" for i in range(n))})
              ON CONFLICT (execution_id, step_name) DO UPDATE SET {updates} RETURNING execution_id)
            UPDATE workflow_executions SET {clause} WHERE execution_id = (SELECT execution_id FROM s)""",
        *step.values(),
        *fields.values(),
    )


async def wake_waiting(conn: asyncpg.Connection, events: Sequence[tuple[str, str]], now: dt.datetime) -> int:
    """Make the executions waiting for one of ``(event_name, user)`` due now; how many."""
    if not events:
        return 0
    status: str = await conn.execute(
        """UPDATE workflow_executions e SET due_at = $3
           FROM unnest($1::text[], $2::text[]) AS x(name, who)
           WHERE e.status = 'waiting' AND e.wait_event = x.name AND e.wait_user = x.who AND e.due_at > $3""",
        [n for n, _ in events],
        [u for _, u in events],
        now,
    )
    return row_count(status)


async def get_watermark(conn: asyncpg.Connection, name: str) -> Row | None:
    """The watermark ``name`` (``position_at``, ``position_id``), locked; None while another matcher
    holds it (SKIP LOCKED) or before the first run."""
    return await conn.fetchrow(
        "SELECT position_at, position_id FROM workflow_watermarks WHERE name = $1 FOR UPDATE SKIP LOCKED",
        name,
    )


async def init_watermark(conn: asyncpg.Connection, name: str, at: dt.datetime) -> None:
    """Create the watermark ``name`` at ``at`` unless it exists."""
    await conn.execute(
        """INSERT INTO workflow_watermarks (name, position_at, position_id)
           VALUES ($1, $2, '00000000-0000-0000-0000-000000000000') ON CONFLICT (name) DO NOTHING""",
        name,
        at,
    )


async def set_watermark(conn: asyncpg.Connection, name: str, at: dt.datetime, event_id: uuid.UUID) -> None:
    """Move the watermark ``name`` to ``(at, event_id)``."""
    await conn.execute(
        """INSERT INTO workflow_watermarks (name, position_at, position_id) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET position_at = $2, position_id = $3,
             updated_at = (now() AT TIME ZONE 'UTC')""",
        name,
        at,
        event_id,
    )


async def active_webhook(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> uuid.UUID | None:
    """``webhook_id`` if it is an active subscription."""
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT webhook_id FROM webhooks WHERE webhook_id = $1 AND status = 'active'", webhook_id
    )
    return found


async def workflow_endpoint(conn: asyncpg.Connection, workflow_id: uuid.UUID, url: str) -> uuid.UUID:
    """The endpoint a workflow's ``{url}`` webhook steps deliver to: a ``webhooks`` row of client
    ``workflow:<workflow_id>`` whose secret is the workflow's own (sealed), created on first use. Its
    ``event_type`` is ``workflow.webhook``, which nothing emits, so it receives only its steps' deliveries."""
    client = f"workflow:{workflow_id}"
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT webhook_id FROM webhooks WHERE client_id = $1 AND target_url = $2 ORDER BY created_at LIMIT 1",
        client,
        url,
    )
    if found is not None:
        return found
    created: uuid.UUID = await conn.fetchval(
        """INSERT INTO webhooks (client_id, event_type, target_url, secret, description)
           SELECT $1, 'workflow.webhook', $2, secret, 'Deliveries of the webhook steps of workflow ' || name
           FROM workflows WHERE workflow_id = $3 RETURNING webhook_id""",
        client,
        url,
        workflow_id,
    )
    return created
