"""The bounded argon2id pool: at most ``workers`` hashes at once, a bounded queue, then 429 at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kernel.hashing import HashingBusyError, PasswordHashing


async def test_at_most_workers_run_and_the_queue_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow_hash(password: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return "hash:" + password

    monkeypatch.setattr("kernel.hashing.hash_password", slow_hash)
    pool = PasswordHashing(workers=2, queue=3)
    try:
        results = await asyncio.gather(*(pool.hash(str(i)) for i in range(8)), return_exceptions=True)
    finally:
        pool.close()
    done = [r for r in results if isinstance(r, str)]
    busy = [r for r in results if isinstance(r, HashingBusyError)]
    assert len(done) == 5  # two running, three queued
    assert len(busy) == 3
    assert peak == 2
    assert busy[0].retry_after == 1
    assert busy[0].code == "server_busy"


async def test_a_slot_is_freed_when_the_work_ends_not_when_the_caller_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def blocked_hash(password: str) -> str:
        release.wait(5)
        return password

    monkeypatch.setattr("kernel.hashing.hash_password", blocked_hash)
    pool = PasswordHashing(workers=1, queue=0)
    try:
        task = asyncio.create_task(pool.hash("a"))
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0.01)
        # The thread still works on the cancelled request's hash: no new one may start.
        with pytest.raises(HashingBusyError):
            await pool.hash("b")
        release.set()
        for _ in range(100):
            if pool.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert await pool.hash("c") == "c"
    finally:
        release.set()
        pool.close()


async def test_real_argon2id_round_trip() -> None:
    pool = PasswordHashing(workers=1)
    try:
        stored = await pool.hash("correct horse battery")
        assert stored.startswith("$argon2id$")
        assert await pool.verify(stored, "correct horse battery")
        assert not await pool.verify(stored, "wrong")
        assert not await pool.verify(None, "anything")
    finally:
        pool.close()
