"""Group commit: requests enqueue their rows and wait; flushers write many requests per COPY transaction.

- A request is answered only after the transaction holding its events committed (durable ack).
- The queue is bounded in events; a request that does not fit, or whose flush cannot reach the database,
  gets ``IngestOverloaded`` (503 + Retry-After): nothing is accepted that cannot be committed.
- A flush that fails on its data (a poisoned row) is bisected, by request and then by event, until the
  bad events are isolated; every other event is committed and the bad ones are reported as rejected.
- Connection failures (PostgreSQL restarting, a stale pooled connection) are retried once on a fresh
  connection, then reported as 503; the pool reconnects by itself once the server is back
  (``ingest.faults`` says which failures are the rows' and which the connection's).
- Exactly once: each message's key (uuid5 of its source and messageId) is claimed in the ledger
  (``ingest.ledger``, partitioned by arrival week) in the same transaction as its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from ingest import ledger, metrics, repository
from ingest.errors import IngestOverloaded
from ingest.faults import classify
from ingest.mapping import ROW_USER_ID, Batch, Run, encode_rows

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest.config import IngestConfig
    from kernel.db import Database

__all__ = ["Outcome", "Pipeline"]

_log = logging.getLogger("corp_astro.ingest")


class _Unavailable(Exception):
    pass


class _Poisoned(Exception):
    pass


class _ClaimConflict(Exception):
    """A COPY claim met a key already claimed that week; its transaction is over."""


@dataclass(slots=True)
class Outcome:
    """What became of one request's accepted events."""

    accepted: int = 0
    duplicates: int = 0
    # Positions in the request's Batch whose rows the database refused (isolated poisoned rows).
    failed: list[int] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Pending:
    batch: Batch
    future: asyncio.Future[Outcome]
    outcome: Outcome = field(default_factory=Outcome)
    unavailable: bool = False


# A run of one request's events: batch.events[start:end].
_Slice = tuple[_Pending, int, int]


class Pipeline:
    """The process's group-commit writer (one per app, started and stopped with it)."""

    def __init__(self, db: Database, config: IngestConfig) -> None:
        self._db = db
        self._config = config
        self._queue: deque[_Pending] = deque()
        self._queued_events = 0
        # Queued plus being flushed: the memory bound.
        self._pending_events = 0
        self._wake = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._closing = False
        self.stats: dict[str, int] = {"flushes": 0, "rejected_overload": 0, "unavailable": 0, "isolations": 0}

    @property
    def pending_events(self) -> int:
        """Events accepted into memory and not yet resolved."""
        return self._pending_events

    def start(self) -> None:
        """Start the flusher tasks."""
        for n in range(self._config.process_flushers):
            self._workers.append(asyncio.create_task(self._worker(), name=f"ingest-flusher-{n}"))

    async def close(self, drain_seconds: float = 10.0) -> None:
        """Refuse new work, flush what is queued (bounded wait), stop the flushers."""
        self._closing = True
        self._wake.set()
        if self._workers:
            _done, still = await asyncio.wait(self._workers, timeout=drain_seconds)
            for task in still:
                task.cancel()
            for task in still:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                metrics.record_unavailable("shutdown")
                pending.future.set_exception(IngestOverloaded("The server is shutting down; retry."))

    def check_room(self) -> None:
        """Raise ``IngestOverloaded`` at once if the queue is full, before a request is read and parsed:
        under overload, refusing early keeps the CPU for the requests that can still be committed."""
        if self._closing:
            metrics.record_unavailable("shutdown")
            raise IngestOverloaded("The server is shutting down; nothing was stored. Retry.")
        if self._pending_events >= self._config.max_pending_events:
            self.stats["rejected_overload"] += 1
            metrics.record_unavailable("overload")
            raise IngestOverloaded(
                "The ingest queue is full; nothing was stored. Retry later.",
                retry_after=self._config.retry_after_seconds,
            )

    async def submit(self, batch: Batch) -> Outcome:
        """Queue ``batch`` and wait until its events are committed (or known not to be)."""
        n = len(batch)
        cfg = self._config
        if self._closing:
            metrics.record_unavailable("shutdown")
            raise IngestOverloaded("The server is shutting down; nothing was stored. Retry.")
        if self._pending_events and self._pending_events + n > cfg.max_pending_events:
            self.stats["rejected_overload"] += 1
            metrics.record_unavailable("overload")
            raise IngestOverloaded(
                "The ingest queue is full; nothing was stored. Retry later.",
                retry_after=cfg.retry_after_seconds,
            )
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, future))
        self._queued_events += n
        self._pending_events += n
        self._wake.set()
        try:
            # shield: a timed-out request leaves its events to the flush (a retry is deduplicated).
            return await asyncio.wait_for(asyncio.shield(future), cfg.ack_timeout_seconds)
        except TimeoutError:
            metrics.record_unavailable("timeout")
            raise IngestOverloaded(
                "The events were not committed in time; retry (a retry never duplicates).",
                retry_after=cfg.retry_after_seconds,
            ) from None

    # --- Flusher ----------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while await self._await_work():
            await self._flush(self._take())

    async def _await_work(self) -> bool:
        """Wait until something is queued; False once closing with nothing left to flush."""
        cfg = self._config
        while True:
            while not self._queue:
                if self._closing:
                    return False
                self._wake.clear()
                await self._wake.wait()
            if self._closing or cfg.flush_linger_ms <= 0 or self._queued_events >= cfg.flush_max_events:
                return True
            # Let concurrent requests join this flush: one transaction (and one WAL flush) for all.
            await asyncio.sleep(cfg.flush_linger_ms / 1000.0)
            if self._queue:
                return True

    def _take(self) -> list[_Pending]:
        """Dequeue whole requests up to ``flush_max_events`` (at least one request, however large)."""
        limit = self._config.flush_max_events
        take: list[_Pending] = []
        count = 0
        while self._queue and (not take or count + len(self._queue[0].batch) <= limit):
            pending = self._queue.popleft()
            take.append(pending)
            count += len(pending.batch)
        self._queued_events -= count
        return take

    async def _flush(self, take: list[_Pending]) -> None:
        """Write ``take`` in one transaction (isolating poisoned rows), then answer each request."""
        count = sum(len(p.batch) for p in take)
        started = time.perf_counter()
        try:
            await self._write_isolating([(p, 0, len(p.batch)) for p in take])
            metrics.record_flush(count, time.perf_counter() - started)
        except asyncio.CancelledError:
            # Stopped mid-flush (shutdown): whether it committed is unknown, so "not committed, retry";
            # a retry of a committed message is a duplicate, never a second copy.
            for p in take:
                p.unavailable = True
            raise
        except Exception:  # a bug must not kill the flusher; the requests get 503 and retry
            _log.exception("ingest flush failed unexpectedly")
            for p in take:
                p.unavailable = True
        finally:
            self._pending_events -= count
            for p in take:
                self._resolve(p)

    def _resolve(self, pending: _Pending) -> None:
        if pending.future.done():
            return
        if pending.unavailable:
            self.stats["unavailable"] += 1
            metrics.record_unavailable("database")
            pending.future.set_exception(
                IngestOverloaded(
                    "The database is unavailable; the events were not stored. Retry.",
                    retry_after=self._config.retry_after_seconds,
                )
            )
        else:
            pending.future.set_result(pending.outcome)

    async def _write_isolating(self, slices: list[_Slice]) -> None:
        try:
            await self._write_retrying(slices)
        except _Unavailable:
            for p, _, _ in slices:
                p.unavailable = True
        except _Poisoned:
            self.stats["isolations"] += 1
            if len(slices) > 1:
                mid = len(slices) // 2
                await self._write_isolating(slices[:mid])
                await self._write_isolating(slices[mid:])
                return
            p, start, end = slices[0]
            if end - start == 1:
                p.outcome.failed.append(start)
                return
            mid = (start + end) // 2
            await self._write_isolating([(p, start, mid)])
            await self._write_isolating([(p, mid, end)])

    async def _write_retrying(self, slices: list[_Slice]) -> None:
        connection_failures = 0
        for _attempt in range(5):
            try:
                await self._write(slices)
                self.stats["flushes"] += 1
                return
            except Exception as exc:
                kind = classify(exc)
                if kind == "poison":
                    _log.warning("ingest flush refused by the database: %s: %s", type(exc).__name__, exc)
                    raise _Poisoned from exc
                if kind == "unavailable":
                    connection_failures += 1
                    # One retry on a fresh connection covers a pooled connection that died with a restart.
                    if connection_failures > 1:
                        _log.warning("database unavailable for ingest: %s", type(exc).__name__)
                        raise _Unavailable from exc
        raise _Unavailable

    async def _claim(
        self,
        conn: asyncpg.Connection,
        keys: list[Any],
        users: Sequence[Any],
        timeout: float,
        *,
        careful: bool = False,
    ) -> tuple[set[Any], set[Any]]:
        """The keys of ``keys`` not seen in the dedupe window, now recorded in the ledger, and the users
        among ``users``, locked: in this transaction, whose first statement this must be (``ledger.begin``
        bounds its length).

        The window's earlier week is read; the claim goes into the transaction's week (and, in a week's
        first hour, the week before: ``ingest.ledger``). Duplicates are rare (SDK retries), so the cheap
        path is tried first: COPY the keys. If one was already claimed that week, that ends the
        transaction (``_ClaimConflict``): the flush starts over with ``careful``, where INSERT ... ON
        CONFLICT sorts them out. No savepoint: it would cost two round trips on every flush.
        """
        begun = await ledger.begin(conn, keys, self._config.dedupe_days, timeout, users=users)
        weeks = ledger.claim_weeks(begun.started)
        fresh = [k for k in keys if k not in begun.seen] if begun.seen else keys
        if not fresh:
            return set(), begun.known_users
        if careful:
            new = set(fresh)
            for week in weeks:
                new &= await ledger.claim(conn, fresh, week, timeout)
            return new, begun.known_users
        claims = sorted(fresh)
        try:
            for week in weeks:
                await ledger.copy_claims(conn, claims, week, timeout)
        except asyncpg.UniqueViolationError as exc:
            raise _ClaimConflict from exc
        return set(fresh), begun.known_users

    async def _write(self, slices: list[_Slice]) -> None:
        timeout = self._config.flush_timeout_seconds
        keys: list[Any] = []
        candidates: set[Any] = set()
        for p, start, end in slices:
            batch = p.batch
            whole = start == 0 and end == len(batch)
            keys += batch.keys if whole else batch.keys[start:end]
            candidates.update([row[ROW_USER_ID] for row in (batch.rows if whole else batch.rows[start:end])])
        candidates.discard(None)
        users = list(candidates)
        unique = set(keys)
        if len(unique) < len(keys):  # the same message twice in one flush: counted as a duplicate below
            keys = list(dict.fromkeys(keys))

        async with self._db.pool.acquire(timeout=timeout) as conn:
            try:
                async with conn.transaction():
                    accepted = await self._write_rows(conn, slices, keys, unique, users, timeout, False)
            except _ClaimConflict:  # rolled back: a retry of a message claimed this week
                async with conn.transaction():
                    accepted = await self._write_rows(conn, slices, keys, unique, users, timeout, True)
        # Committed: only now do the counts become part of the requests' outcomes.
        for p, start, end in slices:
            n_accepted = accepted.get(id(p), 0)
            p.outcome.accepted += n_accepted
            p.outcome.duplicates += (end - start) - n_accepted

    async def _write_rows(
        self,
        conn: asyncpg.Connection,
        slices: list[_Slice],
        keys: list[Any],
        unique: set[Any],
        users: list[Any],
        timeout: float,
        careful: bool,
    ) -> dict[int, int]:
        """The flush's statements in its transaction; how many events of each request were stored."""
        new, known = await self._claim(conn, keys, users, timeout, careful=careful)
        if len(new) == len(keys) == len(unique) == sum(end - start for _, start, end in slices):
            runs: list[Run] = [(p.batch, start, end) for p, start, end in slices]
            accepted = {id(p): end - start for p, start, end in slices}
        else:
            runs, accepted = _new_runs(slices, new)
        if runs:
            events, properties = encode_rows(runs, known)
            await repository.copy_events(conn, events, timeout)
            if properties is not None:
                await repository.copy_properties(conn, properties, timeout)
        return accepted


def _new_runs(slices: list[_Slice], new: set[Any]) -> tuple[list[Run], dict[int, int]]:
    """The events of ``slices`` to store, as runs (the first occurrence of each key in ``new``), and how
    many each request has in them."""
    runs: list[Run] = []
    accepted: dict[int, int] = {}
    taken: set[Any] = set()
    for p, start, end in slices:
        batch_keys = p.batch.keys
        run_start = None
        for i in range(start, end + 1):
            key = batch_keys[i] if i < end else None
            keep = key is not None and key in new and key not in taken
            if keep:
                taken.add(key)
                accepted[id(p)] = accepted.get(id(p), 0) + 1
                if run_start is None:
                    run_start = i
            elif run_start is not None:
                runs.append((p.batch, run_start, i))
                run_start = None
    return runs, accepted
