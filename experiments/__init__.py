"""Experiments domain.

The names below are the domain's public API for other domains (the web app's pages read results and
change experiments through them, as the HTTP API does).
"""

from __future__ import annotations

import uuid
from typing import Any

from experiments.report import Schedule, format_chance, format_p, guardrail_verdict, verdict
from experiments.schemas import AssignmentOut, ExperimentOut, ExperimentPatch, ResultsOut, VariantTraffic
from experiments.service import (
    experiment_out,
    experiment_views,
    get_experiment,
    list_experiments,
    results,
    update_experiment,
)
from experiments.service.daily import daily_results
from experiments.service.dimensions import DIMENSIONS, dimension_results


async def assign_user(pool: Any, name: str, user_id: uuid.UUID) -> AssignmentOut:
    """A registered user's variant in the running experiment ``name`` (sticky: assigned once, then
    found), as ``POST /v1/experiments/{name}/assign`` answers it; for other domains (workflows'
    ``assign_experiment`` step). On the pool, in its own short transaction."""
    from experiments.assigner import AssignmentBatcher
    from experiments.definitions import ExperimentCache
    from experiments.service import assign

    batcher = AssignmentBatcher.for_pool(pool)
    try:
        return (await assign(pool, ExperimentCache(), batcher, name, user_id)).out()
    finally:
        await batcher.close()


__all__ = [
    "DIMENSIONS",
    "AssignmentOut",
    "ExperimentOut",
    "ExperimentPatch",
    "ResultsOut",
    "Schedule",
    "VariantTraffic",
    "assign_user",
    "daily_results",
    "dimension_results",
    "experiment_out",
    "experiment_views",
    "format_chance",
    "format_p",
    "get_experiment",
    "guardrail_verdict",
    "list_experiments",
    "results",
    "update_experiment",
    "verdict",
]
