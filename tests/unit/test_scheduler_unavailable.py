"""A scheduled job that finds PostgreSQL unreachable (a restart, an outage) logs one warning and counts
as a failed run, instead of APScheduler's "raised an exception" traceback; other errors still raise."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from kernel.scheduler import named_job


def _runs(job: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("corp_astro_job_runs_total", {"job": job, "outcome": outcome})
    return value or 0.0


async def test_an_unreachable_database_is_a_warning_and_a_failed_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def job() -> None:
        # What asyncpg raises while the server's socket is gone during a restart.
        raise FileNotFoundError(2, "No such file or directory")

    async def restarting() -> None:
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")

    before = _runs("test.unavailable", "error")
    with caplog.at_level(logging.WARNING, logger="kernel.scheduler"):
        assert await named_job("test.unavailable", job)() is None
        assert await named_job("test.unavailable", restarting)() is None
    assert _runs("test.unavailable", "error") == before + 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "kernel.scheduler"]
    assert warnings == [
        "job test.unavailable: database unavailable (FileNotFoundError); it runs again at its next time",
        "job test.unavailable: database unavailable (CannotConnectNowError); it runs again at its next time",
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_sync_job_too() -> None:
    def job() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    before = _runs("test.unavailable_sync", "error")
    assert named_job("test.unavailable_sync", job)() is None
    assert _runs("test.unavailable_sync", "error") == before + 1


async def test_other_errors_still_raise(tmp_path: Path) -> None:
    async def buggy() -> None:
        raise ValueError("a bug")

    async def exporting() -> None:
        (tmp_path / "missing" / "day.parquet").write_bytes(b"")  # the job's own file: not the database

    def full_disk() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    before = _runs("test.buggy", "error")
    with pytest.raises(ValueError, match="a bug"):
        await named_job("test.buggy", buggy)()
    with pytest.raises(FileNotFoundError):
        await named_job("test.buggy", exporting)()
    with pytest.raises(OSError, match="No space"):
        named_job("test.buggy", full_disk)()
    assert _runs("test.buggy", "error") == before + 3
