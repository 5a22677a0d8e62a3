"""The webhook dispatcher: one per process with the scheduler on, the boundary of every attempt.

It wakes on ``NOTIFY`` (sent when a transaction that emitted an event commits) or every
``poll_seconds``, then:

1. fans the outbox out: takes events (``kernel.events.take``) and queues one delivery per matching
   active endpoint, in one transaction per batch;
2. claims due deliveries (``FOR UPDATE SKIP LOCKED``, under a lease, at most ``endpoint_concurrency``
   in flight per endpoint) as far as it has free slots, and commits the claim;
3. sends each claimed delivery in its own task and records the outcome in a short transaction,
   only if the claim is still its own (same attempt number).

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
from kernel.db import uuid7

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
        self._inflight: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start listening and dispatching in the running loop."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._loop())]

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
        await self.client.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down: poll meanwhile, listen again later
                _log.warning("webhook listener lost its connection; polling", exc_info=True)
            await asyncio.sleep(1)

    async def _listen_once(self) -> None:
        async with self.db.dedicated_connection() as conn:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda *_: lost.set())
            await conn.add_listener(events.CHANNEL, lambda *_: self._wake.set())
            self._wake.set()  # anything committed while we were not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 30)
                await conn.execute("SELECT 1")  # a silently dead connection raises here

    async def _loop(self) -> None:
        poll = self.config.numbers.poll_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("webhook dispatch round failed")
                await asyncio.sleep(poll)

    async def run_once(self) -> int:
        """Fan out the outbox, then claim and start what fits in the free slots; the number started."""
        await self.fan_out()
        free = self.config.numbers.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        async with self.db.transaction() as conn:
            rows = await queue.claim(
                conn, free, self.config.lease_seconds, self.config.numbers.endpoint_concurrency
            )
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

    async def _deliver(self, row: Row) -> None:
        try:
            if row["webhook_status"] != "active":
                attempt = Attempt(None, None, "endpoint disabled", 0.0)
            else:
                attempt = await self._attempt(row)
            await self._record(row, attempt)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be down: the lease expires and the attempt is made again
            _log.exception("webhook attempt not recorded", extra={"delivery_id": str(row["delivery_id"])})

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

    async def _record(self, row: Row, attempt: Attempt) -> None:
        async with self.db.transaction() as conn:
            if attempt.ok:
                outcome = "delivered"
                kept = await queue.record(conn, row, ("delivered", attempt.code, attempt.body, None), None)
            elif attempt.code == 410 or attempt.error == "endpoint disabled":
                outcome = "failed"
                kept = await queue.record(
                    conn, row, ("failed", attempt.code, attempt.body, attempt.error), None
                )
                if kept and attempt.code == 410:
                    await self._disable(conn, row, "the endpoint answered 410 Gone")
            else:
                delay = self._retry_delay(row["attempts"])
                outcome = "retrying" if delay is not None else "failed"
                status = "pending" if delay is not None else "failed"
                kept = await queue.record(
                    conn, row, (status, attempt.code, attempt.body, attempt.error), delay
                )
                disable_after = self.config.numbers.disable_after_seconds
                if kept and await queue.note_failure(conn, row["webhook_id"], disable_after):
                    await self._disable(conn, row, "every attempt failed for the disable period")
        self.metrics.finished(outcome if kept else "lost_claim", attempt.seconds)

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
