"""Experiment logic: definitions, sticky assignment, conversions and results. No HTTP, never commits.

- ``management``: create, read and change definitions, in the caller's transaction;
- ``assignment``: the hot path, on the pool (one shared statement per group of requests);
- ``conversions``: the API's explicit conversions and the incremental goal-event job;
- ``results``: significance, SRM and power.

The names below are the domain's service API; callers import them from here.
"""

from __future__ import annotations

from experiments.service.assignment import Assignment, assign, assign_running, assignments_for
from experiments.service.common import may_act_for, parse_user_id
from experiments.service.conversions import convert_goal_events, record_conversion
from experiments.service.management import (
    create_experiment,
    experiment_out,
    experiment_page,
    get_experiment,
    list_experiments,
    update_experiment,
)
from experiments.service.metrics import experiment_views
from experiments.service.results import MDE_RANGE, MIN_ALPHA, results
from experiments.service.units import assign_for, convert_for, requested_unit

__all__ = [
    "MDE_RANGE",
    "MIN_ALPHA",
    "Assignment",
    "assign",
    "assign_for",
    "assign_running",
    "assignments_for",
    "convert_for",
    "convert_goal_events",
    "create_experiment",
    "experiment_out",
    "experiment_page",
    "experiment_views",
    "get_experiment",
    "list_experiments",
    "may_act_for",
    "parse_user_id",
    "record_conversion",
    "requested_unit",
    "results",
    "update_experiment",
]
