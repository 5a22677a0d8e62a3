"""Group commit for first-time assignments: concurrent requests share one statement.

Every assignment is one ``INSERT ... ON CONFLICT`` round trip and one commit. Under load the same
work for many users in one statement (``repository.assign_batch``) costs the database and asyncpg a
fraction of that per user. Batching is natural, never timed: a request starts a flush when fewer
than ``max_inflight`` are running, otherwise it waits for the next one, so an idle server answers
as fast as before and a busy one gets bigger batches.

A failing batch fails nobody else's request: the batch is retried row by row, so a bad row (a user
deleted between the statement's check and its insert) fails alone. A connection error fails the
batch's requests at once (they answer 503: nothing was committed).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from experiments import repository as repo
from experiments import unit_repository as unit_repo
from experiments.metrics import ASSIGN_BATCH

__all__ = ["AssignmentBatcher"]

_log = logging.getLogger("corp_astro.experiments.assigner")

# (test_id, unit: a user's UUID or a Segment id, variant_id, phase, new assignment id).
Request = tuple[uuid.UUID, Any, uuid.UUID, int, uuid.UUID]
BatchRunner = Callable[[Sequence[Request]], Awaitable[Sequence[Any]]]
OneRunner = Callable[[Request], Awaitable[Any]]

# Not worth retrying row by row: the connection or server is gone, every row would fail the same way.
_FATAL: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)

_Pending = tuple[Request, "asyncio.Future[Any]"]


class AssignmentBatcher:
    """Coalesces concurrent first-time assignments into shared ``assign_batch`` statements.

    ``submit`` answers the same row ``repository.assign_one`` would for the request. Requests for the
    same (test, user) in one batch share one row of the statement (and its answer). One batcher serves
    users (``for_pool``), another anonymous and external units (``for_units``).
    """

    def __init__(
        self,
        run_batch: BatchRunner,
        run_one: OneRunner,
        *,
        max_batch: int = 512,
        max_inflight: int = 2,
    ) -> None:
        self._run_batch = run_batch
        self._run_one = run_one
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._pending: list[_Pending] = []
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_pool(cls, pool: asyncpg.Pool, **kwargs: Any) -> AssignmentBatcher:
        """A batcher running its statements on ``pool``."""

        async def run_batch(wanted: Sequence[repo.AssignRequest]) -> list[asyncpg.Record]:
            return await repo.assign_batch(pool, wanted)

        async def run_one(w: repo.AssignRequest) -> asyncpg.Record:
            return await repo.assign_one(pool, w[0], w[1], w[2], w[3], w[4])

        return cls(run_batch, run_one, **kwargs)

    @classmethod
    def for_units(cls, pool: asyncpg.Pool, **kwargs: Any) -> AssignmentBatcher:
        """A batcher of anonymous and external units' assignments (``experiment_unit_assignments``)."""

        async def run_batch(wanted: Sequence[unit_repo.UnitAssignRequest]) -> list[asyncpg.Record]:
            return await unit_repo.assign_unit_batch(pool, wanted)

        async def run_one(w: unit_repo.UnitAssignRequest) -> asyncpg.Record:
            return await unit_repo.assign_unit_one(pool, w)

        return cls(run_batch, run_one, **kwargs)

    async def submit(
        self,
        test_id: uuid.UUID,
        user_id: uuid.UUID | str,
        variant_id: uuid.UUID,
        phase: int,
        new_id: uuid.UUID,
    ) -> Any:
        """The assignment row for this request, once its batch's statement has run."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(((test_id, user_id, variant_id, phase, new_id), fut))
        if self._inflight < self.max_inflight:
            self._inflight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def close(self) -> None:
        """Wait for the flushes in progress (their requests are owed an answer)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._flush(batch)
        finally:
            self._inflight -= 1

    async def _flush(self, batch: list[_Pending]) -> None:
        # One statement row per (test, user): ON CONFLICT cannot see a row its own statement inserted.
        keys: dict[tuple[uuid.UUID, Any], int] = {}
        wanted: list[Request] = []
        slot: list[int] = []
        for w, _ in batch:
            i = keys.setdefault((w[0], w[1]), len(wanted))
            if i == len(wanted):
                wanted.append(w)
            slot.append(i)
        ASSIGN_BATCH.observe(len(wanted))
        try:
            rows: Sequence[Any] = await self._run_batch(wanted)
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except _FATAL as exc:
            for _, fut in batch:
                _set_exception(fut, exc)
            return
        except Exception as exc:
            if len(wanted) == 1:
                for _, fut in batch:
                    _set_exception(fut, exc)
                return
            _log.warning("assignment batch of %d failed (%s); retrying row by row", len(wanted), exc)
            rows = await self._one_by_one(wanted)
        answered: set[int] = set()
        for (_, fut), i in zip(batch, slot, strict=True):
            row = rows[i]
            if isinstance(row, BaseException):
                _set_exception(fut, row)
                continue
            if i in answered:
                row = _as_existing(row)  # only the first request of a pair created the assignment
            answered.add(i)
            if not fut.done():
                fut.set_result(row)

    async def _one_by_one(self, wanted: list[Request]) -> list[Any]:
        out: list[Any] = []
        for w in wanted:
            try:
                out.append(await self._run_one(w))
            except Exception as exc:
                out.append(exc)
        return out


def _as_existing(row: Any) -> dict[str, Any]:
    out = dict(row.items())
    if out["new_variant"] is not None:
        out["old_variant"], out["old_at"] = out["new_variant"], out["new_at"]
        out["new_variant"] = out["new_at"] = None
    return out


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
