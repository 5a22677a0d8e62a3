"""Tables of the businesses domain (defined with the rest of the core schema in ``core_api.models``)."""

from __future__ import annotations

from core_api.models import Business, BusinessAnalysis

__all__ = ["Business", "BusinessAnalysis"]
