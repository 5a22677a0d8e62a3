"""Jobs stop at a safe point on shutdown; one worker of several runs the scheduler; job runs are counted."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from prometheus_client import REGISTRY

from kernel.scheduler import create_scheduler, start_if_elected, stop_at_safe_point


async def _scheduler_running_one_job(seconds: float, log: list[str]) -> object:
    scheduler = create_scheduler()

    async def job() -> None:
        log.append("started")
        await asyncio.sleep(seconds)
        log.append("finished")

    scheduler.add_job(job, "date", run_date=dt.datetime.now(dt.UTC), id="test.slow_job")
    assert start_if_elected(scheduler, None)
    for _ in range(100):
        if log:
            break
        await asyncio.sleep(0.02)
    assert log == ["started"]
    return scheduler


async def test_a_running_job_finishes_within_the_timeout() -> None:
    log: list[str] = []
    before = REGISTRY.get_sample_value(
        "corp_astro_job_runs_total", {"job": "test.slow_job", "outcome": "success"}
    )
    scheduler = await _scheduler_running_one_job(0.3, log)
    await stop_at_safe_point(scheduler, timeout=5)  # type: ignore[arg-type]
    assert log == ["started", "finished"]
    assert not scheduler.running  # type: ignore[attr-defined]
    after = REGISTRY.get_sample_value(
        "corp_astro_job_runs_total", {"job": "test.slow_job", "outcome": "success"}
    )
    assert (after or 0) - (before or 0) == 1


async def test_a_job_past_the_timeout_is_cancelled() -> None:
    log: list[str] = []
    scheduler = await _scheduler_running_one_job(30, log)
    started = asyncio.get_running_loop().time()
    await stop_at_safe_point(scheduler, timeout=0.2)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)  # the cancellation is delivered at the job's next await
    assert asyncio.get_running_loop().time() - started < 2
    assert log == ["started"]
    assert not scheduler.running  # type: ignore[attr-defined]


async def test_only_the_lock_holder_runs_the_scheduler(tmp_path: Path) -> None:
    lock = str(tmp_path / "scheduler.lock")
    first, second = create_scheduler(), create_scheduler()
    assert start_if_elected(first, lock)
    try:
        # flock is per open file description: a second open in the same process is refused like
        # another process would be.
        assert not start_if_elected(second, lock)
        assert not second.running
    finally:
        await stop_at_safe_point(first, timeout=1)  # releases the lock
    assert start_if_elected(second, lock)
    await stop_at_safe_point(second, timeout=1)
