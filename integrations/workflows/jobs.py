"""The workflow runner: the boundary of every step (claim, run, record: one transaction per batch).

``run_due`` does, until nothing is due: match newly ingested events (``triggers.match_events``), fire
due schedules, then claim due executions with ``FOR UPDATE SKIP LOCKED`` and advance each by one step
in a savepoint of the claim's transaction. Committing a batch commits each step with its effect and the
execution's next position. A step that raises rolls back to its savepoint and is recorded as a failed
attempt (``steps.failed``). Any number of runners (processes, ``workflows run-due``) share the work.

``register_jobs`` runs it every ``CORP_ASTRO_WORKFLOW_POLL_SECONDS`` in each process with the
scheduler on.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from integrations.workflows import repository as repo
from integrations.workflows import steps, triggers
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


class _UnguardedStepFailed(Exception):
    """A step run without a savepoint failed: the batch's transaction is lost and is run again guarded."""


async def _run_one(
    conn: Any, ctx: steps.RunContext, ex: Any, when: dt.datetime, guarded: bool, stats: RunStats
) -> str:
    # Steps whose only SQL is their own record (set_variables, condition, delay) run without a
    # savepoint: if that record fails, the whole batch is run again with savepoints (``guarded``).
    savepoint = guarded or await steps.has_effects(conn, ctx, ex)
    if savepoint:  # not released: one round trip; the batch's commit ends them all
        await conn.execute("SAVEPOINT workflow_step")
    try:
        status = await steps.advance(conn, ctx, ex, when)
        stats.steps += 1
        return status
    except Exception as exc:  # any step error is a failed attempt, never a stuck runner
        if not savepoint:
            raise _UnguardedStepFailed from exc
        await conn.execute("ROLLBACK TO SAVEPOINT workflow_step")
        _log.warning(
            "workflow step failed", extra={"execution_id": str(ex["execution_id"]), "error": str(exc)}
        )
        status = await steps.failed(conn, ctx, ex, f"{type(exc).__name__}: {exc}", when)
        stats.retried += status == "running"
        return status


async def _step_batch(
    db: Database,
    ctx: steps.RunContext,
    now: dt.datetime | None,
    batch: int,
    stats: RunStats,
    guarded: bool = False,
) -> int:
    local = RunStats()
    try:
        async with db.pool.acquire() as conn, conn.transaction():
            when = _now(now)
            claimed = await repo.claim_due(conn, when, batch)
            for ex in claimed:
                status = await _run_one(conn, ctx, ex, when, guarded, local)
                local.completed += status == "completed"
                local.failed += status == "failed"
    except _UnguardedStepFailed:
        ctx.rows.clear()  # rolled back: what it remembered did not happen
        return await _step_batch(db, ctx, now, batch, stats, guarded=True)
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
