"""Retention errors."""

from __future__ import annotations

from kernel.errors import ConflictError

__all__ = ["RetentionBusy"]


class RetentionBusy(ConflictError):
    """Another process is running retention or partition upkeep right now."""

    code = "retention_busy"
