"""The runner's batch: the claimed executions advanced in memory, then written in a few round trips.

Each claimed execution runs, in memory, any number of steps without effects (``set_variables``,
``condition``, ``delay``) and at most one ``send_notification``, until it waits, ends, or reaches a
step with another effect (or a second one). ``flush`` then writes the whole batch: the notifications
in one round trip, every step row (input, output, status, attempts, times) and every execution's new
state in one statement, and the completion events in one. It runs in the claim's transaction, so
the steps commit with their effects, or, after a crash, not at all and run again: a notification is
committed with the row of the step that made it (its ``data`` names the step id), once.

An execution that reached a step with another effect (``webhook``, ``wait_for_event``,
``assign_experiment``) runs it next through ``steps.advance`` (``resumed``), in the same transaction.
An execution whose planning raised is left to ``steps.advance`` from where it was, one step at a
time, so its error is recorded as a failed attempt of the right step. The savepoints are the
runner's (``jobs``). Never commits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core_api.notifications import notify_many
from integrations.workflows import batch_sql, steps, templating
from integrations.workflows.step_types import RUN, Outcome, StepError, notification
from kernel import events
from kernel.db import uuid7

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Plan", "flush", "keep", "plan_batch", "resumed"]

_PURE = frozenset({"set_variables", "condition", "delay"})
_BATCHED = frozenset({"send_notification"})


@dataclass
class Plan:
    """What one claimed execution does in this batch: its step rows, its state after, its effects."""

    ex: Any
    rows: list[dict[str, Any]]  # the execution's step rows after the batch
    records: list[dict[str, Any]] = field(default_factory=list)  # the rows this batch writes
    notifications: list[tuple[Any, ...]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # batch_sql.EXECUTION_STATE
    effect_next: bool = False  # left at a step with another effect, which steps.advance runs now

    @property
    def status(self) -> str:
        status: str = self.state["status"]
        return status


def _state(plan: Plan, status: str, next_step: str | None, attempts: int, variables: Any) -> None:
    plan.state = {
        "execution_id": plan.ex["execution_id"],
        "status": status,
        "next_step": next_step,
        "attempts": attempts,
        "variables": variables,
        "due_at": plan.ex["due_at"],  # the next step keeps the due time: depth first
        "wait_event": None,
        "wait_user": None,
        "completed_at": None,
        "result": None,
    }


async def _run(
    view: dict[str, Any], step: dict[str, Any], existing: Any, plan: Plan, now: dt.datetime
) -> Any:
    """Run one step in memory: (step id, templated input, outcome)."""
    step_id = existing["step_id"] if existing else uuid7()
    context = steps.step_context(view, plan.rows)
    data = templating.render(step["input"], context) if step["type"] != "condition" else step["input"]
    if step["type"] in _BATCHED:
        row, output = notification(view, step_id, data)
        plan.notifications.append(row)
        return step_id, data, Outcome(output=output)
    return step_id, data, await RUN[step["type"]](None, view, step_id, data, existing, context, now)


def _effect_stop(kind: str, plan: Plan) -> bool:
    return kind not in _PURE and (bool(plan.notifications) or kind not in _BATCHED)


async def _plan(
    ex: Any, definition: dict[str, Any], rows: list[dict[str, Any]], now: dt.datetime
) -> Plan | None:
    """The execution's steps in this batch; None when its next step is one the batch does not run."""
    plan = Plan(ex=ex, rows=rows)
    name, variables, attempts = ex["next_step"], ex["variables"], ex["attempts"]
    while True:
        if len(plan.records) > len(definition["steps"]):
            raise StepError("The steps do not end.")  # jumps only go forward: never for a valid one
        index, step = steps.find_step(definition, name)
        if _effect_stop(step["type"], plan):
            if not plan.records:
                return None
            plan.effect_next = not plan.notifications
            _state(plan, "running", name, 0, variables)
            return plan
        existing = next((r for r in plan.rows if r["step_name"] == name), None)
        view = {**ex, "variables": variables, "attempts": attempts, "next_step": name}
        step_id, data, outcome = await _run(view, step, existing, plan, now)
        record = {**steps.step_record(view, step, existing, data, outcome, now), "step_id": step_id}
        plan.records.append(record)
        plan.rows = [r for r in plan.rows if r["step_name"] != name] + [record]
        if outcome.variables is not None:
            variables = outcome.variables
        if outcome.waiting_until:
            _state(plan, "waiting", name, attempts, variables)
            wait_event, wait_user = outcome.wait_for or (None, None)
            plan.state.update(due_at=outcome.waiting_until, wait_event=wait_event, wait_user=wait_user)
            return plan
        following = outcome.next_step or steps.step_after(definition, index)
        if following == "end":
            _state(plan, "completed", None, attempts, variables)
            plan.state.update(due_at=None, completed_at=now, result={"variables": variables})
            return plan
        name, attempts = following, 0


async def _rows(conn: asyncpg.Connection, ctx: steps.RunContext, claimed: list[Any]) -> dict[uuid.UUID, Any]:
    """Each claimed execution's step rows: from the runner's cache, none for a new one, else read (one
    statement for all)."""
    found: dict[uuid.UUID, Any] = {}
    for ex in claimed:
        cached = ctx.rows.pop(ex["execution_id"], None)
        if cached is not None and cached[0] == ex["next_step"] and ex["attempts"] == 0:
            found[ex["execution_id"]] = cached[1]
        elif ex["status"] == "pending" and ex["attempts"] == 0:
            found[ex["execution_id"]] = []
    missing = [ex["execution_id"] for ex in claimed if ex["execution_id"] not in found]
    for eid in missing:
        found[eid] = []
    if missing:
        for r in await batch_sql.steps_of_many(conn, missing):
            found[r["execution_id"]].append(dict(r))
    return found


async def plan_batch(
    conn: asyncpg.Connection, ctx: steps.RunContext, claimed: list[Any], now: dt.datetime
) -> tuple[list[Plan], list[Any]]:
    """(the plans, the executions left to ``steps.advance``: their next step is not the batch's, or
    planning it raised)."""
    rows = await _rows(conn, ctx, claimed)
    plans: list[Plan] = []
    single: list[Any] = []
    for ex in claimed:
        try:
            definition = await ctx.definition(conn, ex["workflow_id"], ex["version"])
            plan = await _plan(ex, definition, rows[ex["execution_id"]], now)
        except Exception:  # steps.advance runs it again and records the error
            plan = None
        if plan is None:
            single.append(ex)
            if ex["attempts"] == 0:  # what steps.advance reads (RunContext.steps_of)
                ctx.keep(ex["execution_id"], ex["next_step"], rows[ex["execution_id"]])
        else:
            plans.append(plan)
    return plans, single


async def flush(conn: asyncpg.Connection, plans: list[Plan]) -> None:
    """Write the plans: notifications, step rows and states, completion events (three round trips)."""
    notes = [n for p in plans for n in p.notifications]
    if notes:
        await notify_many(conn, notes)
    await batch_sql.record_batch(conn, [r for p in plans for r in p.records], [p.state for p in plans])
    done = [
        (
            "workflow.execution_completed",
            {"workflow_id": p.ex["workflow_id"], "execution_id": p.ex["execution_id"], "status": "completed"},
        )
        for p in plans
        if p.status == "completed"
    ]
    await events.emit_many(conn, done)


def keep(ctx: steps.RunContext, plans: list[Plan]) -> None:
    """Remember the step rows of the executions left running (their next claim reads none)."""
    for p in plans:
        if p.status == "running":
            ctx.keep(p.ex["execution_id"], p.state["next_step"], p.rows)


def resumed(plan: Plan) -> dict[str, Any]:
    """The execution as ``flush`` left it, for ``steps.advance``."""
    state = plan.state
    return {**plan.ex, **{k: state[k] for k in ("status", "next_step", "attempts", "variables")}}
