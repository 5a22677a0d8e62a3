"""Aggregation domain: scheduled Polars rollups, active users, goal-event conversions, Parquet exports.

The public functions below are the contract with ``retention`` (docs/schema.md, "Aggregation").
"""

from __future__ import annotations

from aggregation.repository import finalise_day, finalised_days
from aggregation.service import rollup_day

__all__ = ["finalise_day", "finalised_days", "rollup_day"]
