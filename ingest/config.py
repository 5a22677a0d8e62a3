"""Ingest's knobs: a section of the one settings object (``kernel.settings.IngestConfig``, read once at
start-up from ``CORP_ASTRO_INGEST_*``; README, "Ingest"), named here for ingest's code."""

from __future__ import annotations

from kernel.settings import IngestConfig

__all__ = ["IngestConfig"]
