"""CPU counters of ``corp-astro bench ingest``: the server under test, its PostgreSQL and the load generator.

Each is read from the processes' own counters (``/proc/<pid>/stat`` through psutil), before and after a
phase. PostgreSQL is the whole embedded cluster of the benchmark's data dir (the postmaster named by its
``postmaster.pid``, its live children, and the children it has already reaped), so backends, the WAL
writer, the checkpointer and the background writer all count. With ``DATABASE_URL`` set (a shared
server), only backends whose process title names the benchmark's database are counted.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from bench.kit import cpu_seconds, own_cpu_seconds

__all__ = ["CpuReading", "postmaster_pid", "read_cpu"]


@dataclass(frozen=True, slots=True)
class CpuReading:
    """CPU seconds used so far: by the server (with its workers), by PostgreSQL, by this process."""

    server: float
    postgres: float
    generator: float
    postgres_scope: str

    def per_event_us(self, later: CpuReading, events: int) -> tuple[float, float, float]:
        """µs of CPU per event of (server, PostgreSQL, load generator) between this reading and ``later``."""
        n = max(1, events)
        return (
            (later.server - self.server) / n * 1e6,
            (later.postgres - self.postgres) / n * 1e6,
            (later.generator - self.generator) / n * 1e6,
        )


def postmaster_pid(data_dir: Path) -> int | None:
    """The postmaster of the embedded cluster under ``data_dir/postgres``, if it runs."""
    with contextlib.suppress(OSError, ValueError):
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    return None


def _cluster_cpu(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    t = proc.cpu_times()
    # children_*: the children it has reaped (backends that exited during the phase).
    total = float(t.user + t.system + t.children_user + t.children_system)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            ct = child.cpu_times()
            total += ct.user + ct.system
    return total


def read_cpu(server_pids: list[int], db_name: str, data_dir: Path) -> CpuReading:
    """One reading of the three counters."""
    server, backends = cpu_seconds(server_pids, db_name)
    pid = None if os.environ.get("DATABASE_URL") else postmaster_pid(data_dir)
    if pid is not None:
        with contextlib.suppress(Exception):
            return CpuReading(server, _cluster_cpu(pid), own_cpu_seconds(), "whole cluster")
    return CpuReading(server, backends, own_cpu_seconds(), "backends of the bench database")
