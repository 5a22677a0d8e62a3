"""Tables of the reports domain (defined with the rest of the core schema in ``core_api.models``)."""

from __future__ import annotations

from core_api.models import Report, ReportSection

__all__ = ["Report", "ReportSection"]
