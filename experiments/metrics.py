"""Experiments' metrics: how many first-time assignments share one statement (the batcher's work)."""

from __future__ import annotations

from kernel import metrics

__all__ = ["ASSIGN_BATCH"]

ASSIGN_BATCH = metrics.histogram(
    "corp_astro_assignment_batch_size",
    "Assignments written by one statement of the assignment batcher (users' and units' alike).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
