"""Aggregation domain: scheduled Polars rollups, active users, goal-event conversions, Parquet exports.

The public functions below are the contract with ``retention`` (docs/schema.md, "Aggregation").
"""

from __future__ import annotations

from aggregation.memory import configure_allocators

# Before anything imports Polars (nothing else in the app does).
configure_allocators()

from aggregation.repository import finalise_day, finalised_days  # noqa: E402
from aggregation.service import rollup_day  # noqa: E402

__all__ = ["finalise_day", "finalised_days", "rollup_day"]
