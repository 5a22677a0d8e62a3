"""The job that keeps every experiment's per-unit metric state current (``experiments.unit_values``)."""

from __future__ import annotations

import asyncpg

from experiments import metric_repository as mrepo
from experiments import repository as repo
from experiments import unit_state_repository as state_repo
from experiments.metric_definitions import Analysis
from experiments.service.metric_results import Plan
from experiments.service.unit_state import refresh

__all__ = ["fold_unit_values"]


async def fold_unit_values(conn: asyncpg.Connection) -> int:
    """Fold the events ingested since each experiment's mark into its state (a rebuild where the analysis
    changed), in the caller's READ COMMITTED transaction; the unit rows written."""
    hi = await state_repo.horizon(conn)  # first: see state_repo.horizon
    experiments = [e for e in await repo.fetch_experiments(conn) if e.status != "draft"]
    analyses = await mrepo.fetch_analyses(conn, [e.test_id for e in experiments])
    written = 0
    for exp in experiments:
        plan = Plan.of(analyses.get(exp.test_id, Analysis()))
        if plan.parts:
            written += await refresh(conn, exp, plan.parts, plan.history, hi)
    return written
