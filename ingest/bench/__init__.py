"""``corp-astro bench ingest`` (see ``ingest.bench.command``)."""

from __future__ import annotations

from ingest.bench.command import bench_ingest

__all__ = ["bench_ingest"]
