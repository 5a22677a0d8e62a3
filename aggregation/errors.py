"""Errors of the aggregation domain, each in one of the kernel's categories."""

from __future__ import annotations

from kernel.errors import ConflictError, NotFoundError, RateLimitedError, ValidationError

__all__ = ["BadRange", "ExportNotFound", "ExportNotReady", "TooManyExports"]


class BadRange(ValidationError):
    """A date range that is malformed, reversed or longer than allowed."""


class ExportNotFound(NotFoundError):
    """No export with this id."""

    code = "export_not_found"


class ExportNotReady(ConflictError):
    """The export has not finished successfully (yet)."""

    code = "export_not_ready"


class TooManyExports(RateLimitedError):
    """The caller already has the maximum number of unfinished exports."""

    code = "too_many_exports"
