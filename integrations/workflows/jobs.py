"""The workflow runner: the boundary of every step (claim, run, record: one transaction per batch).

``run_due`` does, until nothing is due: match newly ingested events (``triggers.match_events``), fire
due schedules, then claim due executions with ``FOR UPDATE SKIP LOCKED`` and advance them in the
claim's transaction. ``batch`` runs each execution's steps without effects in memory, with at most one
notification, and writes the whole batch (notifications, step rows, states, completion events) in a
savepoint; if that fails, every execution of the batch advances one step at a time instead, each in
its own savepoint (``steps.advance``), as do the steps with other effects. Committing the claim
commits each step with its effect and the execution's next position. A step that raises rolls back
to its savepoint and is recorded as a failed attempt (``steps.failed``). Any number of runners
(processes, ``workflows run-due``) share the work.

``register_jobs`` runs it every ``CORP_ASTRO_WORKFLOW_POLL_SECONDS`` in each process with the
scheduler on.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from integrations.workflows import batch, steps, triggers
from integrations.workflows import repository as repo
from integrations.workflows.config import RunnerConfig

if TYPE_CHECKING:
    from kernel.db import Database

__all__ = ["RunStats", "register_jobs", "run_due"]

_log = logging.getLogger("corp_astro.integrations.workflows")


@dataclass
class RunStats:
    """What a ``run_due`` did."""

    events: int = 0
    started: int = 0
    scheduled: int = 0
    steps: int = 0
    retried: int = 0
    completed: int = 0
    failed: int = 0

    def line(self) -> str:
        """One line for the operator."""
        return (
            f"events read {self.events}, executions started {self.started + self.scheduled} "
            f"({self.scheduled} by schedule), steps run {self.steps}, retries scheduled {self.retried}, "
            f"completed {self.completed}, failed {self.failed}"
        )


def _now(fixed: dt.datetime | None) -> dt.datetime:
    return fixed or dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def _match(db: Database, now: dt.datetime | None, config: RunnerConfig, stats: RunStats) -> None:
    while True:
        async with db.pool.acquire() as conn, conn.transaction():
            read, started = await triggers.match_events(conn, _now(now), settle=config.settle_seconds)
            stats.events += read
            stats.started += started
        if read == 0:
            break
    async with db.pool.acquire() as conn, conn.transaction():
        stats.scheduled += await triggers.fire_schedules(conn, _now(now))


_SQLSTATES = {"23503": "a row the step refers to does not exist", "23505": "the row already exists"}


def describe_error(exc: Exception) -> str:
    """What an execution records of a step's error. Our own errors keep their message; a database error
    keeps its class and SQLSTATE only: its text names tables and constraints, and the execution's error
    goes out in the ``workflow.execution_failed`` webhook. The full text is in the log."""
    if isinstance(exc, asyncpg.PostgresError):
        what = _SQLSTATES.get(exc.sqlstate or "", "the database refused the step's write")
        return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate}): {what}"
    return f"{type(exc).__name__}: {exc}"


async def _run_one(conn: Any, ctx: steps.RunContext, ex: Any, when: dt.datetime, stats: RunStats) -> None:
    """Advance one execution by one step in its own savepoint (not released: the batch's commit ends
    them all). A step that raises rolls back to it and is recorded as a failed attempt."""
    await conn.execute("SAVEPOINT workflow_step")
    try:
        status = await steps.advance(conn, ctx, ex, when)
        stats.steps += 1
    except Exception as exc:  # any step error is a failed attempt, never a stuck runner
        await conn.execute("ROLLBACK TO SAVEPOINT workflow_step")
        _log.warning(
            "workflow step failed", extra={"execution_id": str(ex["execution_id"]), "error": str(exc)}
        )
        status = await steps.failed(conn, ctx, ex, describe_error(exc), when)
        stats.retried += status == "running"
    stats.completed += status == "completed"
    stats.failed += status == "failed"


async def _flush(conn: Any, plans: list[batch.Plan]) -> bool:
    """Write the batch in a savepoint; False (rolled back) if it failed."""
    await conn.execute("SAVEPOINT workflow_batch")
    try:
        await batch.flush(conn, plans)
    except Exception as exc:  # one bad row: every execution of the batch goes one step at a time
        await conn.execute("ROLLBACK TO SAVEPOINT workflow_batch")
        _log.warning("workflow batch failed; running its steps one by one", extra={"error": str(exc)})
        return False
    return True


async def _advance(
    conn: Any, ctx: steps.RunContext, claimed: list[Any], when: dt.datetime, stats: RunStats
) -> None:
    """Advance the claimed executions: the batch (``batch``), then one step each of those it leaves."""
    plans, single = await batch.plan_batch(conn, ctx, claimed, when)
    if plans and not await _flush(conn, plans):
        single += [p.ex for p in plans]
        plans = []
    for p in plans:
        stats.steps += len(p.records)
        stats.completed += p.status == "completed"
    batch.keep(ctx, plans)
    for ex in [batch.resumed(p) for p in plans if p.effect_next] + single:
        await _run_one(conn, ctx, ex, when, stats)


async def _step_batch(
    db: Database, ctx: steps.RunContext, now: dt.datetime | None, batch_size: int, stats: RunStats
) -> int:
    local = RunStats()
    try:
        async with db.pool.acquire() as conn, conn.transaction():
            when = _now(now)
            claimed = await repo.claim_due(conn, when, batch_size)
            if claimed:
                await _advance(conn, ctx, claimed, when, local)
    except BaseException:
        ctx.rows.clear()  # rolled back: what it remembered did not happen
        raise
    for name in ("steps", "retried", "completed", "failed"):
        setattr(stats, name, getattr(stats, name) + getattr(local, name))
    return len(claimed)


async def run_due(
    db: Database,
    now: dt.datetime | None = None,
    config: RunnerConfig | None = None,
    ctx: steps.RunContext | None = None,
    *,
    max_batches: int | None = None,
) -> RunStats:
    """Run every step due by ``now`` (the real clock when None); ``max_batches`` bounds the claims."""
    config = config or RunnerConfig.from_env()
    ctx = ctx or steps.RunContext()
    steps.use_pool(db.pool)
    stats = RunStats()
    await _match(db, now, config, stats)
    batches = 0
    while max_batches is None or batches < max_batches:
        if await _step_batch(db, ctx, now, config.batch, stats) == 0:
            break
        batches += 1
    return stats


async def _tick(app: Any) -> None:
    state = app.state
    stats = await run_due(state.db, None, state.workflow_runner_config, state.workflow_context)
    if stats.steps or stats.started or stats.scheduled:
        _log.info("workflows ran", extra={"summary": stats.line()})


def register_jobs(scheduler: Any, app: Any) -> None:
    """Run due workflow work every ``poll_seconds`` in this process (one run at a time)."""
    app.state.workflow_runner_config = RunnerConfig.from_env()
    app.state.workflow_context = steps.RunContext()
    scheduler.add_job(
        _tick,
        "interval",
        seconds=app.state.workflow_runner_config.poll_seconds,
        args=[app],
        id="integrations.workflows",
        replace_existing=True,
    )
