"""``corp-astro bench workflows``: executions/s of a 3-step workflow (set_variables, condition,
send_notification) beside the same three effects written directly, and the latency from the trigger
event's commit to its first step done.

Everything runs in this process on a scratch database (``corp_astro_bench_workflows``), with
``--runners`` runner tasks, each on its own pool (what that many processes with the scheduler on do).

1. Direct: ``--runners`` workers, one transaction per execution: evaluate the condition in Python and
   insert the notification (``core_api.notifications.notify``) with the variables in its data.
2. Runner: N events committed in one statement; the runners match them (``triggers.match_events``),
   start N executions and run their 3N steps. Clock: from the events' commit until every execution is
   completed (matching included).
3. Direct again (the WAL flush each of its commits waits on is what other work on the machine slows
   most): the ratio is the runner's rate to the faster direct run. Each phase also reports this
   process's CPU per execution.
4. Latency: one event per transaction, paced at ``--rate`` per second for ``--seconds``, while the
   runners poll every ``CORP_ASTRO_WORKFLOW_POLL_SECONDS`` (default 0.5; settle 0.5 s); a monitor
   sees each first step's row committed (polling every 20 ms) and subtracts the event's commit time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid
from typing import Any

import click

from kernel.db import Database, recreate_database, resolve_database_url, uuid7
from kernel.settings import get_settings

__all__ = ["bench_workflows"]

BENCH_DB = "corp_astro_bench_workflows"
EVENT = "Bench Purchased"
STEPS = [
    {"name": "vars", "type": "set_variables", "input": {"amount": "{{ trigger.properties.amount }}"}},
    {"name": "check", "type": "condition", "input": {"if": "variables.amount >= 10", "then": "notify"}},
    {
        "name": "notify",
        "type": "send_notification",
        "input": {
            "user_id": "{{ trigger.user_id }}",
            "title": "Thanks",
            "message": "You spent {{ variables.amount }}",
        },
    },
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def _setup(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    from integrations.workflows import repository

    async with db.transaction() as conn:
        user_id = await conn.fetchval(
            """INSERT INTO users (email, password_hash, first_name, last_name)
               VALUES ('bench-workflows@bench.invalid', 'x', 'Bench', 'User') RETURNING user_id"""
        )
        row = await repository.insert_workflow(
            conn,
            {
                "name": "bench",
                "definition": {"steps": STEPS},
                "trigger_type": "event",
                "trigger_config": {"event": EVENT},
                "status": "active",
            },
        )
    return user_id, row["workflow_id"]


async def _insert_events(db: Database, user_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """``n`` events (and their ``amount`` property) in one transaction; their ids."""
    ids = [uuid7() for _ in range(n)]
    ts = _utcnow()
    async with db.transaction() as conn:
        await conn.execute(
            """INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp")
               SELECT id, $2, $3, 'track', $4 FROM unnest($1::uuid[]) AS id""",
            ids, user_id, EVENT, ts,
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO event_properties (property_id, event_id, property_name, property_value, "timestamp")
               SELECT gen_random_uuid(), id, 'amount', '25', $2 FROM unnest($1::uuid[]) AS id""",
            ids, ts,
        )  # fmt: skip
    return ids


async def _direct(db: Database, user_id: uuid.UUID, n: int, workers: int) -> tuple[float, float]:
    """(executions/s, this process's CPU seconds per execution)."""
    from core_api.notifications import notify
    from integrations.workflows import expressions

    tree = expressions.parse("variables.amount >= 10")
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            async with db.transaction() as conn:
                variables = {"amount": "25", "i": i}
                if expressions.evaluate(tree, {"variables": variables}):
                    await notify(
                        conn, user_id, title="Thanks", body="You spent 25", type="workflow", data=variables
                    )

    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return n / (time.perf_counter() - t0), (time.process_time() - cpu0) / n


async def _run_until(dbs: list[Database], done: Any, config: Any) -> None:
    from integrations.workflows import jobs

    async def loop(db: Database) -> None:
        while not done():
            stats = await jobs.run_due(db, None, config)
            if stats.steps == 0 and stats.events == 0:
                await asyncio.sleep(config.poll_seconds)

    await asyncio.gather(*(loop(db) for db in dbs))


async def _throughput(dbs: list[Database], user_id: uuid.UUID, n: int) -> tuple[float, float]:
    """(executions/s, this process's CPU seconds per execution: the runners' and the watcher's)."""
    from integrations.workflows.config import RunnerConfig

    config = RunnerConfig(poll_seconds=0.05, settle_seconds=0.0, batch=200)
    await _insert_events(dbs[0], user_id, n)
    t0, cpu0 = time.perf_counter(), time.process_time()
    finished = False

    async def watch() -> None:
        nonlocal finished
        while True:
            async with dbs[0].pool.acquire() as conn:
                if (
                    await conn.fetchval("SELECT count(*) FROM workflow_executions WHERE status = 'completed'")
                    >= n
                ):
                    finished = True
                    return
            await asyncio.sleep(0.05)

    await asyncio.gather(watch(), _run_until(dbs, lambda: finished, config))
    return n / (time.perf_counter() - t0), (time.process_time() - cpu0) / n


async def _latency(dbs: list[Database], user_id: uuid.UUID, rate: float, seconds: float) -> list[float]:
    from integrations.workflows.config import RunnerConfig

    config = RunnerConfig.from_env()
    committed: dict[str, float] = {}
    seen: dict[str, float] = {}
    start = _utcnow()
    sending = True

    async def send() -> None:
        nonlocal sending
        t0 = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            (event_id,) = await _insert_events(dbs[0], user_id, 1)
            committed[str(event_id)] = time.time()
        sending = False

    async def monitor() -> None:
        async with dbs[0].pool.acquire() as conn:
            while sending or len(seen) < len(committed):
                rows = await conn.fetch(
                    """SELECT e.trigger_data ->> 'event_id' AS event_id FROM workflow_execution_steps s
                       JOIN workflow_executions e USING (execution_id)
                       WHERE s.step_name = 'vars' AND e.started_at >= $1""",
                    start,
                )
                now = time.time()
                for r in rows:
                    seen.setdefault(r["event_id"], now)
                await asyncio.sleep(0.02)

    stop = False
    runners = asyncio.ensure_future(_run_until(dbs, lambda: stop, config))
    await asyncio.gather(send(), monitor())
    stop = True
    await runners
    return [seen[e] - t for e, t in committed.items() if e in seen]


async def _bench(n: int, runners: int, rate: float, seconds: float) -> dict[str, Any]:
    from kernel import migrate

    url = await recreate_database(resolve_database_url(get_settings()), BENCH_DB)
    await asyncio.to_thread(migrate.upgrade, url, "heads")
    dbs = [Database(url, max_size=2) for _ in range(runners)]
    for db in dbs:
        await db.open()
    try:
        user_id, _ = await _setup(dbs[0])
        load = [os.getloadavg()[0]]
        direct = [await _direct(dbs[0], user_id, n, runners)]
        await _clear_notifications(dbs[0])
        runner = await _throughput(dbs, user_id, n)
        await _clear_notifications(dbs[0])
        # Direct again after the runner: one transaction per execution waits on the WAL flush, which
        # other work on the machine slows down; the ratio is taken to the faster of the two.
        direct.append(await _direct(dbs[0], user_id, n, runners))
        latencies = await _latency(dbs, user_id, rate, seconds)
        load.append(os.getloadavg()[0])
    finally:
        for db in dbs:
            await db.close()
    return {"direct": direct, "runner": runner, "latencies": latencies, "load": load}


async def _clear_notifications(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM notifications")


@click.command("workflows")
@click.option("--executions", default=10_000, show_default=True, help="Executions for the throughput phase.")
@click.option("--runners", default=2, show_default=True, help="Runner tasks (and direct workers).")
@click.option("--rate", default=50.0, show_default=True, help="Events per second in the latency phase.")
@click.option("--seconds", default=20.0, show_default=True, help="Length of the latency phase.")
def bench_workflows(executions: int, runners: int, rate: float, seconds: float) -> None:
    """Executions/s of a 3-step workflow vs the same effects written directly; p99 commit -> first step."""
    res = asyncio.run(_bench(executions, runners, rate, seconds))
    lat = res["latencies"]
    (d1, c1), (d2, c2) = res["direct"]
    rate_runner, cpu_runner = res["runner"]
    click.echo(f"load average (1 min) at start and end: {res['load'][0]:.2f}, {res['load'][1]:.2f}")
    click.echo(
        f"direct (one transaction per execution, {runners} workers), before and after the runner: "
        f"{d1:,.0f} and {d2:,.0f} executions/s; client CPU {c1 * 1e6:.0f} and {c2 * 1e6:.0f} us/execution"
    )
    click.echo(
        f"runner ({runners} runners, {executions:,} executions, matching included): {rate_runner:,.0f} "
        f"executions/s, client CPU {cpu_runner * 1e6:.0f} us/execution; ratio to the faster direct run "
        f"{rate_runner / max(d1, d2):.2f} (goal >= 0.5)"
    )
    click.echo(
        f"event commit -> first step done at {rate:g}/s for {seconds:g} s ({len(lat)} executions): "
        f"p50 {_pct(lat, 0.5) * 1000:.0f} ms, p99 {_pct(lat, 0.99) * 1000:.0f} ms (goal p99 <= 2000 ms)"
    )
