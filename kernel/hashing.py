"""Password hashing on a bounded worker pool, so that argon2id cannot take the server down.

One argon2id hash costs about 0.1 s of CPU and 64 MiB of memory. Run without bounds (a thread per
request), a burst of registrations or logins takes every core and hundreds of MiB, and every other
request waits behind it. Here at most ``workers`` hashes run at once (default: the core count), at most
``queue`` more wait, and past that a caller gets ``HashingBusyError`` (429 with Retry-After) at once.
Nothing here holds a database connection: callers hash before or after their transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from kernel.auth import hash_password, verify_password
from kernel.errors import RateLimitedError

__all__ = ["HashingBusyError", "PasswordHashing"]

T = TypeVar("T")


class HashingBusyError(RateLimitedError):
    """Every hashing worker is busy and the queue is full."""

    code = "server_busy"


class PasswordHashing:
    """argon2id hashing and verification on at most ``workers`` threads, with a bounded queue."""

    def __init__(self, workers: int | None = None, queue: int = 32, retry_after: int = 1) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.queue = max(0, queue)
        self.retry_after = retry_after
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="argon2")
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Hashes running or queued now."""
        return self._in_flight

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._in_flight >= self.workers + self.queue:
            raise HashingBusyError(
                "The server is busy checking passwords; try again shortly.", retry_after=self.retry_after
            )
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        future: Future[T] = self._executor.submit(fn, *args)
        # Released when the work ends, not when the caller stops waiting: a client that disconnects
        # mid-hash must not free a slot whose thread is still busy.
        future.add_done_callback(lambda _: self._release_from_thread(loop))
        return await asyncio.wrap_future(future)

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        # RuntimeError: the loop has closed (shutdown), and nobody counts slots any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self._in_flight -= 1

    async def hash(self, password: str) -> str:
        """argon2id hash of ``password``."""
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check ``password``; ``None`` (no such account) burns the same time and returns False."""
        return await self._run(verify_password, password_hash, password)

    def close(self) -> None:
        """Stop the workers (after the running hashes finish)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
