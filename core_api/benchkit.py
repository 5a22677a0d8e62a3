"""Measuring helpers shared by the ``corp-astro bench`` commands (no domain code)."""

from __future__ import annotations

import contextlib
import os

__all__ = ["cpu_seconds", "own_cpu_seconds"]


def cpu_seconds(pids: list[int], db_name: str) -> tuple[float, float]:
    """CPU seconds used so far by the server processes (with children) and by PostgreSQL backends of ``db_name``.

    Backends are found by their process title, which names the database; only backends alive at both
    readings of a phase count, so the benchmarks keep their connections open across a phase.
    """
    import psutil

    server = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                server += t.user + t.system
    backends = 0.0
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if db_name in " ".join(p.info["cmdline"] or []):
                t = p.cpu_times()
                backends += t.user + t.system
    return server, backends


def own_cpu_seconds() -> float:
    """CPU seconds this process (the load generator) has used so far."""
    t = os.times()
    return t.user + t.system
