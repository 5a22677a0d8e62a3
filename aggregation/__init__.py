"""Aggregation domain: scheduled Polars rollups, active users, experiment daily counts, Parquet exports.

The public functions below are the contract with ``retention`` (docs/schema.md, "Aggregation") and with
the web app (the rollup queries and exports behind ``/v1/analytics`` and ``/v1/exports``). Importing
the domain loads neither Polars nor anything else with a side effect: the jobs load Polars when they first
compute (``aggregation.jobs``).
"""

from __future__ import annotations

from aggregation.exports import create_export, download_path, get_export, list_exports, parse_range
from aggregation.jobs import rollup_day, run_export
from aggregation.repository import (
    finalise_day,
    finalised_days,
    query_active_users,
    query_event_rollups,
    query_experiment_daily,
)
from aggregation.schemas import ExportOut, export_out

__all__ = [
    "ExportOut",
    "create_export",
    "download_path",
    "export_out",
    "finalise_day",
    "finalised_days",
    "get_export",
    "list_exports",
    "parse_range",
    "query_active_users",
    "query_event_rollups",
    "query_experiment_daily",
    "rollup_day",
    "run_export",
]
