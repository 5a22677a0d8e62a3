"""Errors of the reports domain."""

from __future__ import annotations

from kernel.errors import NotFoundError

__all__ = ["ReportBusinessNotFoundError", "ReportNotFoundError"]


class ReportNotFoundError(NotFoundError):
    """No such report (or it belongs to someone else)."""

    code = "report_not_found"


class ReportBusinessNotFoundError(NotFoundError):
    """The ``business_id`` of a report is not a business of the report's owner."""

    code = "business_not_found"
