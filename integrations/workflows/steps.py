"""The durable runner's step logic: advance one claimed execution by one step. Never commits.

The runner (``jobs.run_due``) claims due executions with ``FOR UPDATE SKIP LOCKED``; ``batch`` runs
their steps without effects and their notifications, and ``advance`` the other steps (and every step
when a batch fails), each inside a savepoint of the claim's transaction, which commits the step's row,
its effect and the execution's next position together. So an effect happens exactly once per step:

- ``send_notification`` inserts the notification in that transaction (its ``data`` names the step id);
- ``webhook`` enqueues one delivery whose event id (the ``webhook-id`` receivers dedupe on) is the step
  id; the webhooks dispatcher sends, signs and retries it;
- ``delay`` and ``wait_for_event`` store a ``waiting`` row and a due time, and hold no worker.

A crash before the commit leaves no trace of the step: the execution is claimed again and the step
runs again. A step that raises is recorded by ``failed`` (retried with backoff up to its
``max_attempts``, then the execution fails).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from integrations.workflows import repository as repo
from integrations.workflows import templating
from integrations.workflows.step_types import RUN, Outcome, StepError, use_pool
from kernel import events
from kernel.db import uuid7

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "RunContext",
    "StepError",
    "advance",
    "backoff",
    "failed",
    "find_step",
    "step_after",
    "step_context",
    "step_record",
    "use_pool",
]

DEFAULT_MAX_ATTEMPTS = 3


@dataclass
class RunContext:
    """What a runner keeps between steps: definitions by (workflow, version), which never change."""

    definitions: dict[tuple[uuid.UUID, int], dict[str, Any]] = field(default_factory=dict)
    # The step rows of executions this runner advanced last, keyed by execution, with the step they
    # were left at: valid while the execution is still there (no other runner moved it since).
    rows: dict[uuid.UUID, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)

    async def steps_of(self, conn: asyncpg.Connection, ex: Any) -> list[dict[str, Any]]:
        """The execution's step rows (from the cache when this runner left it at its next step)."""
        cached = self.rows.pop(ex["execution_id"], None)
        if cached is not None and cached[0] == ex["next_step"] and ex["attempts"] == 0:
            return cached[1]
        if ex["status"] == "pending" and ex["attempts"] == 0:
            return []  # not started: no step row yet
        return [dict(r) for r in await repo.steps_of(conn, ex["execution_id"])]

    def keep(self, execution_id: uuid.UUID, next_step: str, rows: list[dict[str, Any]]) -> None:
        """Remember the rows of an execution left at ``next_step`` (bounded: cleared past 10,000)."""
        if len(self.rows) >= 10_000:
            self.rows.clear()
        self.rows[execution_id] = (next_step, rows)

    async def definition(
        self, conn: asyncpg.Connection, workflow_id: uuid.UUID, version: int
    ) -> dict[str, Any]:
        key = (workflow_id, version)
        if key not in self.definitions:
            self.definitions[key] = await repo.get_version(conn, workflow_id, version)
        return self.definitions[key]


def backoff(attempt: int) -> dt.timedelta:
    """The wait before retry ``attempt`` + 1 of a step: 30 s, 1 min, 2 min, ..., at most 1 h."""
    return dt.timedelta(seconds=min(30 * 2 ** max(attempt - 1, 0), 3600))


def step_context(ex: Any, rows: list[Any]) -> dict[str, Any]:
    return {
        "trigger": ex["trigger_data"],
        "variables": ex["variables"],
        "steps": {r["step_name"]: {"output": r["output"], "status": r["status"]} for r in rows},
    }


def find_step(definition: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    for i, step in enumerate(definition["steps"]):
        if step["name"] == name:
            return i, step
    raise StepError(f"The definition has no step {name!r}.")


def step_record(
    ex: Any, step: dict[str, Any], existing: Any, data: Any, outcome: Outcome, now: dt.datetime
) -> dict[str, Any]:
    """The step's row after this attempt."""
    waiting = outcome.waiting_until is not None
    return {
        "step_id": existing["step_id"] if existing else uuid7(),
        "execution_id": ex["execution_id"],
        "step_name": step["name"],
        "step_type": step["type"],
        "input": data,
        "output": outcome.output,
        "status": "waiting" if waiting else "completed",
        "error_message": None,
        "attempts": ex["attempts"] + 1,
        "started_at": existing["started_at"] if existing and existing["status"] == "waiting" else now,
        "completed_at": None if waiting else now,
    }


async def advance(conn: asyncpg.Connection, ctx: RunContext, ex: Any, now: dt.datetime) -> str:
    """Run the execution's next step (or resume it); the execution's status after."""
    definition = await ctx.definition(conn, ex["workflow_id"], ex["version"])
    index, step = find_step(definition, ex["next_step"])
    rows = await ctx.steps_of(conn, ex)
    existing = next((r for r in rows if r["step_name"] == step["name"]), None)
    context = step_context(ex, rows)
    step_id = existing["step_id"] if existing else uuid7()
    data = templating.render(step["input"], context) if step["type"] != "condition" else step["input"]
    outcome = await RUN[step["type"]](conn, ex, step_id, data, existing, context, now)
    record = {**step_record(ex, step, existing, data, outcome, now), "step_id": step_id}
    if outcome.waiting_until:
        wait_event, wait_user = outcome.wait_for or (None, None)
        fields = {
            "status": "waiting",
            "due_at": outcome.waiting_until,
            "wait_event": wait_event,
            "wait_user": wait_user,
        }
        await repo.record_step(conn, record, fields)
        return "waiting"
    following = outcome.next_step or step_after(definition, index)
    variables = outcome.variables if outcome.variables is not None else ex["variables"]
    if following == "end":
        await _finish(conn, ex, "completed", now, variables=variables, step=record)
        return "completed"
    # due_at stays: the next step is due at once, and ahead of executions that started later, so a
    # runner takes an execution's steps one after another (depth first) rather than breadth first.
    fields = {
        "status": "running",
        "next_step": following,
        "attempts": 0,
        "variables": variables,
        "wait_event": None,
        "wait_user": None,
    }
    await repo.record_step(conn, record, fields)
    ctx.keep(ex["execution_id"], following, [r for r in rows if r["step_name"] != step["name"]] + [record])
    return "running"


def step_after(definition: dict[str, Any], index: int) -> str:
    steps = definition["steps"]
    return str(steps[index + 1]["name"]) if index + 1 < len(steps) else "end"


async def _finish(
    conn: asyncpg.Connection,
    ex: Any,
    status: str,
    now: dt.datetime,
    *,
    variables: dict[str, Any] | None = None,
    error: str | None = None,
    step: dict[str, Any] | None = None,
) -> None:
    fields: dict[str, Any] = {"status": status, "completed_at": now, "due_at": None}
    if status == "completed":
        fields.update(next_step=None, variables=variables, result={"variables": variables})
    else:
        fields["error_message"] = error
    if step is not None:
        await repo.record_step(conn, step, fields)
    else:
        await repo.update_execution(conn, ex["execution_id"], fields)
    data = {"workflow_id": ex["workflow_id"], "execution_id": ex["execution_id"], "status": status}
    if error is not None:
        data.update(step=ex["next_step"], error=error)
    await events.emit(conn, f"workflow.execution_{status}", data)


async def failed(conn: asyncpg.Connection, ctx: RunContext, ex: Any, error: str, now: dt.datetime) -> str:
    """Record a failed attempt of the execution's current step: retried after ``backoff``, or, past the
    step's ``max_attempts``, the step and the execution fail. The execution's status after."""
    definition = await ctx.definition(conn, ex["workflow_id"], ex["version"])
    try:
        _, step = find_step(definition, ex["next_step"])
    except StepError:
        step = {"name": ex["next_step"] or "?", "type": "unknown", "input": {}}
    attempts = ex["attempts"] + 1
    exhausted = attempts >= step.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    message = error[:2000]
    await repo.upsert_step(
        conn,
        {
            "execution_id": ex["execution_id"],
            "step_name": step["name"],
            "step_type": step["type"],
            "input": step["input"],
            "status": "failed" if exhausted else "pending",
            "error_message": message,
            "attempts": attempts,
            "started_at": now,
            "completed_at": now if exhausted else None,
        },
    )
    if exhausted:
        await _finish(conn, ex, "failed", now, error=f"step {step['name']!r}: {message}")
        return "failed"
    await repo.update_execution(
        conn,
        ex["execution_id"],
        {"status": "running", "attempts": attempts, "due_at": now + backoff(attempts)},
    )
    return "running"
