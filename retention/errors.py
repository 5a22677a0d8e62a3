"""Retention errors."""

from __future__ import annotations

from core_api.errors import ConflictError

__all__ = ["RetentionBusy"]


class RetentionBusy(ConflictError):
    """Another process is running retention or partition upkeep right now."""

    code = "retention_busy"
