"""Experiments domain.

The names below are the domain's public API for other domains (the web app's pages read results and
change experiments through them, as the HTTP API does).
"""

from __future__ import annotations

from experiments.report import Schedule, guardrail_verdict, verdict
from experiments.schemas import ExperimentOut, ExperimentPatch, ResultsOut, VariantTraffic
from experiments.service import (
    experiment_out,
    experiment_views,
    get_experiment,
    list_experiments,
    results,
    update_experiment,
)

__all__ = [
    "ExperimentOut",
    "ExperimentPatch",
    "ResultsOut",
    "Schedule",
    "VariantTraffic",
    "experiment_out",
    "experiment_views",
    "get_experiment",
    "guardrail_verdict",
    "list_experiments",
    "results",
    "update_experiment",
    "verdict",
]
