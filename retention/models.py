"""Retention ledger tables (added by the retention issue)."""

from __future__ import annotations

__all__: list[str] = []
