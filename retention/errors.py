"""Retention errors."""

from __future__ import annotations

from kernel.errors import ConflictError

__all__ = ["NotDetachedByRetention", "RetentionBusy"]


class RetentionBusy(ConflictError):
    """Another process is running retention or partition upkeep right now."""

    code = "retention_busy"


class NotDetachedByRetention(Exception):
    """A drop was asked of a table that retention did not detach and mark (never dropped). Raised only
    in scheduled and CLI runs, where it fails the action; no client can cause it."""
