"""Settings of the workflow runner, from ``CORP_ASTRO_WORKFLOW_*`` (docs/workflows.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["RunnerConfig"]


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclass(frozen=True)
class RunnerConfig:
    """``poll_seconds``: how often each process with the scheduler on runs due work; ``settle_seconds``:
    how old an ingested event must be before the matcher reads it; ``batch``: executions per claim."""

    poll_seconds: float = 0.5
    settle_seconds: float = 0.5
    batch: int = 100

    @classmethod
    def from_env(cls) -> RunnerConfig:
        """The settings from the environment (defaults where unset)."""
        config = cls(
            poll_seconds=_float("CORP_ASTRO_WORKFLOW_POLL_SECONDS", cls.poll_seconds),
            settle_seconds=_float("CORP_ASTRO_WORKFLOW_SETTLE_SECONDS", cls.settle_seconds),
            batch=int(_float("CORP_ASTRO_WORKFLOW_BATCH", cls.batch)),
        )
        if config.poll_seconds <= 0 or config.settle_seconds < 0 or not 1 <= config.batch <= 10_000:
            raise ValueError("CORP_ASTRO_WORKFLOW_*: poll > 0, settle >= 0 and 1 <= batch <= 10000")
        return config
