"""Aggregation domain: scheduled Polars rollups, active users, experiment daily counts, Parquet exports.

The public functions below are the contract with ``retention`` (docs/schema.md, "Aggregation"). Importing
the domain loads neither Polars nor anything else with a side effect: the jobs load Polars when they first
compute (``aggregation.jobs``).
"""

from __future__ import annotations

from aggregation.jobs import rollup_day
from aggregation.repository import finalise_day, finalised_days

__all__ = ["finalise_day", "finalised_days", "rollup_day"]
