"""The webhook dispatcher: one per process with the scheduler on, the boundary of every attempt.

It wakes on ``NOTIFY`` (sent when a transaction that emitted an event commits) or every
``poll_seconds``, then:

1. fans the outbox out: takes events (``kernel.events.take``) and queues one delivery per matching
   active endpoint, in one transaction per batch;
2. claims due deliveries (``FOR UPDATE SKIP LOCKED``, under a lease) as far as it has free slots, and
   commits the claim. It claims ahead: up to twice ``endpoint_concurrency`` per endpoint (counting
   every process's live claims), while at most ``endpoint_concurrency`` are sent at once per endpoint
   in this process, so the next attempt starts the moment one ends, without a database round trip;
3. sends each claimed delivery in its own task; outcomes finishing within ``linger_seconds`` of each
   other are recorded together in one short transaction (the successes in one statement), each only
   if the claim is still its own (same attempt number).

A process that dies mid-send leaves its claim to expire; the row is claimed again and sent with the
same ``webhook-id`` (at least once). No transaction stays open across an HTTP call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from typing import TYPE_CHECKING, Any

import httpx

from integrations import queue
from integrations.metrics import Metrics
from integrations.sender import Attempt, post, secrets_in_use, signed_headers
from integrations.ssrf import Resolver, guarded_transport
from kernel import events
from kernel.db import unreachable, uuid7

if TYPE_CHECKING:
    from integrations.config import WebhookConfig
    from kernel.crypto import SecretBox
    from kernel.db import Database

__all__ = ["Dispatcher"]

_log = logging.getLogger("corp_astro.webhooks")
Row = Any  # asyncpg.Record


class Dispatcher:
    """Moves events to endpoints for one process (see the module docstring)."""

    def __init__(
        self, db: Database, config: WebhookConfig, box: SecretBox, *, resolver: Resolver | None = None
    ) -> None:
        self.db = db
        self.config = config
        self.box = box
        self.metrics = Metrics()
        n = config.numbers
        transport = guarded_transport(config.allow_nets, resolver, max_connections=n.concurrency * 2)
        self.client = httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False, timeout=n.timeout_seconds
        )
        self._wake = asyncio.Event()
        self._outbox_hint = True  # a notification (or a poll) says the outbox may hold events
        self._inflight: set[asyncio.Task[None]] = set()
        self._gates: dict[Any, asyncio.Semaphore] = {}  # per endpoint: attempts sent at once
        self._sending = asyncio.Semaphore(n.concurrency)  # attempts sent at once by this process
        self._results: list[tuple[Row, Attempt]] = []
        self._results_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start listening and dispatching in the running loop."""
        self._tasks = [asyncio.create_task(t) for t in (self._listen(), self._loop(), self._recorder())]

    async def stop(self, grace: float = 2.0) -> None:
        """Stop; attempts still running after ``grace`` seconds are cancelled (their leases expire and
        another process, or this one after a restart, sends them again)."""
        for task in self._tasks:
            task.cancel()
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=grace)
        for task in [*self._inflight, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._inflight, *self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):  # what was sent is recorded; otherwise leases expire
            await self.flush()
        await self.client.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: poll meanwhile, listen again later
                # A restart is expected: one line; anything else keeps its traceback.
                _log.warning(
                    "webhook listener lost its connection (%s); polling",
                    type(exc).__name__,
                    exc_info=not unreachable(exc),
                )
            await asyncio.sleep(1)

    async def _listen_once(self) -> None:
        async with self.db.dedicated_connection() as conn:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda *_: lost.set())
            await conn.add_listener(events.CHANNEL, lambda *_: self._notified())
            self._wake.set()  # anything committed while we were not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 30)
                await conn.execute("SELECT 1")  # a silently dead connection raises here

    def _notified(self) -> None:
        self._outbox_hint = True
        self._wake.set()

    async def _loop(self) -> None:
        n = self.config.numbers
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), n.poll_seconds)
            except TimeoutError:
                self._outbox_hint = True
            self._wake.clear()
            await asyncio.sleep(n.linger_seconds)  # let close wake-ups share one claim
            hint, self._outbox_hint = self._outbox_hint, False
            try:
                await self.run_once(fan_out=hint)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("webhook dispatch round failed")
                await asyncio.sleep(n.poll_seconds)

    async def _recorder(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            await asyncio.sleep(self.config.numbers.linger_seconds)  # let close outcomes share one commit
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down: the leases expire and the attempts are retried
                _log.exception("webhook outcomes not recorded")

    async def run_once(self, *, fan_out: bool = True) -> int:
        """Record finished attempts, fan out the outbox, then claim and start what fits in the free
        slots; the number started."""
        await self.flush()
        if fan_out:
            await self.fan_out()
        n = self.config.numbers
        free = 2 * n.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        async with self.db.transaction() as conn:
            rows = await queue.claim(conn, free, self.config.lease_seconds, 2 * n.endpoint_concurrency)
        for row in rows:
            task = asyncio.create_task(self._deliver(row))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free: claim more

    async def fan_out(self) -> int:
        """Move every outbox event into deliveries, a batch per transaction; the deliveries queued."""
        batch, queued = self.config.numbers.fanout_batch, 0
        while True:
            async with self.db.transaction() as conn:
                taken = await events.take(conn, batch)
                queued += await queue.fan_out(conn, taken)
            if len(taken) < batch:
                return queued

    def _gate(self, webhook_id: Any) -> asyncio.Semaphore:
        gate = self._gates.get(webhook_id)
        if gate is None:
            if len(self._gates) > 10_000:  # idle endpoints' gates; busy ones are recreated at once
                self._gates = {k: g for k, g in self._gates.items() if g.locked()}
            gate = self._gates[webhook_id] = asyncio.Semaphore(self.config.numbers.endpoint_concurrency)
        return gate

    async def _deliver(self, row: Row) -> None:
        if row["webhook_status"] != "active":
            attempt = Attempt(None, None, "endpoint disabled", 0.0)
        else:
            async with self._gate(row["webhook_id"]), self._sending:
                attempt = await self._attempt(row)
        self._results.append((row, attempt))
        self._results_ready.set()

    async def _attempt(self, row: Row) -> Attempt:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            secrets = secrets_in_use(self.box, row, now)
        except ValueError:  # sealed under another CORP_ASTRO_SECRET_KEY: a failure, never a crash loop
            return Attempt(None, None, "the signing secret cannot be decrypted: rotate it", 0.0)
        body = row["payload"].encode()
        headers = signed_headers(secrets, f"msg_{row['event_id']}", body)
        self.metrics.started(row)
        return await post(self.client, self.config, row["target_url"], headers, body)

    def _retry_delay(self, attempts: int) -> float | None:
        schedule = self.config.retry_schedule
        if attempts >= len(schedule):
            return None
        jitter = self.config.numbers.jitter
        return schedule[attempts] * random.uniform(1 - jitter, 1 + jitter)

    async def flush(self) -> None:
        """Record every finished attempt in one transaction: the successes in one statement, each
        failure with its retry or disabling."""
        batch, self._results = self._results, []
        if not batch:
            return
        done = [(r, a) for r, a in batch if a.ok]
        outcomes: list[tuple[str, float]] = []
        async with self.db.transaction() as conn:
            rows = [(r["delivery_id"], r["attempts"], a.code, a.body) for r, a in done]
            kept = await queue.record_delivered(conn, rows)
            for row, attempt in batch:
                if not attempt.ok:
                    outcomes.append((await self._record_failure(conn, row, attempt), attempt.seconds))
        outcomes += [("delivered", a.seconds) for _, a in done[:kept]]
        outcomes += [("lost_claim", a.seconds) for _, a in done[kept:]]
        for outcome, seconds in outcomes:
            self.metrics.finished(outcome, seconds)
        self._wake.set()  # recorded rows no longer count as in flight for their endpoints: claim more

    async def _record_failure(self, conn: Any, row: Row, attempt: Attempt) -> str:
        failure = (attempt.code, attempt.body, attempt.error)
        if attempt.code == 410 or attempt.error == "endpoint disabled":
            if not await queue.record(conn, row, ("failed", *failure), None):
                return "lost_claim"
            if attempt.code == 410:
                await self._disable(conn, row, "the endpoint answered 410 Gone")
            return "failed"
        delay = self._retry_delay(row["attempts"])
        status = "pending" if delay is not None else "failed"
        if not await queue.record(conn, row, (status, *failure), delay):
            return "lost_claim"
        if await queue.note_failure(conn, row["webhook_id"], self.config.numbers.disable_after_seconds):
            await self._disable(conn, row, "every attempt failed for the disable period")
        return "retrying" if delay is not None else "failed"

    async def _disable(self, conn: Any, row: Row, reason: str) -> None:
        hook = await queue.disable_endpoint(conn, row["webhook_id"], reason)
        if hook is None:
            return
        self.metrics.finished("disabled", 0.0)
        data = {"webhook_id": hook["webhook_id"], "client_id": hook["client_id"], "reason": reason}
        event = events.Event(uuid7(), "webhook.disabled", events.event_body("webhook.disabled", data))
        await queue.fan_out(conn, [event], client_id=hook["client_id"], exclude=hook["webhook_id"])
        await events.wake(conn)
        _log.warning(
            "webhook endpoint disabled", extra={"webhook_id": str(hook["webhook_id"]), "reason": reason}
        )
