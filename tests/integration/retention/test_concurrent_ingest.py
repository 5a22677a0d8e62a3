"""Ingest keeps working while retention drains the default partition and drops old partitions."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from kernel.auth import generate_write_key, hash_write_key
from kernel.db import Database
from retention import jobs
from retention.schemas import RetentionPolicy, add_months
from tests.integration.retention.conftest import insert_events, partition_names
from tests.support import LiveServer


async def test_ingest_concurrent_with_retention_loses_nothing(rdb: Database, rdb_url: str) -> None:
    today = dt.datetime.now(dt.UTC).date()
    # Raw data 30 months old (to be dropped) and a month 14 months old with no partition yet, so its
    # events land in the default partition and get drained while ingest is writing.
    doomed = add_months(today, -30)
    await insert_events(rdb, [dt.datetime.combine(doomed.replace(day=d), dt.time(12)) for d in (2, 9, 16)])
    # Drained by the upkeep of its own month; a run today would leave it alone, outside the raw window.
    await jobs.run(rdb, doomed, RetentionPolicy(), upkeep_only=True)
    assert f"analytics_events_p{doomed:%Y_%m}" in await partition_names(rdb, "analytics_events")
    late_month = add_months(today, -14)
    key = generate_write_key()
    async with rdb.transaction() as conn:
        await conn.execute(
            "INSERT INTO api_sources (name, key_hash, key_prefix) VALUES ('app', $1, $2)",
            hash_write_key(key),
            key[:12],
        )

    acked: list[str] = []
    failures: list[int] = []
    stop = asyncio.Event()

    async def client(base_url: str, n: int) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            i = 0
            while not stop.is_set():
                i += 1
                ids = [f"c{n}-{i}-{k}" for k in range(20)]
                events = []
                for k, mid in enumerate(ids):
                    when = (
                        dt.datetime.now(dt.UTC)
                        if k % 2
                        else dt.datetime.combine(late_month.replace(day=1 + k), dt.time(8))
                    )
                    events.append(
                        {
                            "type": "track",
                            "event": "tap",
                            "messageId": mid,
                            "anonymousId": f"a{n}",
                            "timestamp": when.isoformat().replace("+00:00", "Z")
                            if when.tzinfo
                            else when.isoformat() + "Z",
                            "properties": {"k": k},
                        }
                    )
                r = await http.post("/v1/batch", json={"batch": events}, auth=(key, ""))
                if r.status_code == 200:
                    acked.extend(ids)
                else:
                    failures.append(r.status_code)

    with LiveServer(rdb_url) as server:
        load = [asyncio.create_task(client(server.base_url, n)) for n in range(3)]
        await asyncio.sleep(1.0)
        actions = []
        for _ in range(3):  # repeated runs while the load continues: drain, finalise, drop, re-run
            actions += await jobs.run(rdb, today, RetentionPolicy())
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*load)

    assert failures == []
    assert len(acked) > 100
    done = {(a.action, a.target) for a in actions if a.status == "done"}
    assert ("drop_partition", f"analytics_events_p{doomed:%Y_%m}") in done
    assert ("drain_default", f"{late_month:%Y-%m}") in done
    stored = await rdb.pool.fetch(
        "SELECT message_id, count(*) AS n FROM analytics_events GROUP BY message_id"
    )
    counts = {r["message_id"]: r["n"] for r in stored}
    assert all(counts.get(mid) == 1 for mid in acked), "an acknowledged event is missing or duplicated"
