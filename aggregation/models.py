"""Rollup tables and the job-run ledger (added by the aggregation issue)."""

from __future__ import annotations

__all__: list[str] = []
