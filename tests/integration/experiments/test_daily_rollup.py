"""The daily series' stored days (``experiment_daily_results``): equal to computing every day again, each
closed day computed once, recomputed only for late data (from its day on) or a changed analysis, and
today's point always live.

The data: registered users exposed over six days, purchases with an ``amount`` (some before exposure, for
CUPED) and app opens spread over the days since; a capped sum, a count, a ratio and a retention metric.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest

from experiments.jobs import run_daily_results
from experiments.service.daily import daily_results
from experiments.service.daily_cache import Budget
from experiments.service.unit_state_job import fold_unit_values
from kernel.db import Database
from tests.integration.experiments.conftest import (
    Actors,
    Client,
    copy_events,
    create,
    make_users,
    variant_ids,
)
from tests.support import ROOT

TODAY = dt.datetime.now(dt.UTC).date()
START = dt.datetime.combine(TODAY - dt.timedelta(days=6), dt.time())
METRICS = [
    {"name": "revenue", "kind": "sum", "event": "purchase", "property": "amount", "cap_percentile": 0.95, "direction": "increase"},
    {"name": "opens", "kind": "count", "event": "open", "direction": "increase"},
    {"name": "rev_per_open", "kind": "ratio", "numerator": "revenue", "denominator": "opens", "direction": "increase"},
    {"name": "returned", "kind": "retention", "event": "open", "retention_days": [1, 3], "direction": "increase"},
]  # fmt: skip


def _event(user: uuid.UUID, name: str, at: dt.datetime) -> tuple[Any, ...]:
    return (uuid.uuid4(), user, name, "test", at)


def _purchase(user: uuid.UUID, at: dt.datetime, amount: str, events: list[Any], props: list[Any]) -> None:
    ev = _event(user, "purchase", at)
    events.append(ev)
    props.append((uuid.uuid4(), ev[0], "amount", amount, at))


async def _arrange(client: Client, actors: Actors, conn: asyncpg.Connection) -> list[uuid.UUID]:
    """The metrics, the experiment and its data; the users, in order of exposure."""
    for body in METRICS:
        r = await client.post("/v1/metrics", json=body, headers=actors.admin)
        assert r.status_code == 201, r.text
    await create(
        client, actors.admin, primary_metric="revenue", secondary_metrics=["opens", "rev_per_open"],
        guardrail_metrics=["returned"], start_date=START.date().isoformat(),
    )  # fmt: skip
    test_id, arms = await variant_ids(conn, "checkout")
    rng = random.Random(1501)
    ids = await make_users(conn, 120)
    exposed = {u: START + dt.timedelta(hours=1 + i * 1.2) for i, u in enumerate(ids)}  # over 6 days
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[(uuid.uuid4(), test_id, arms["green" if i % 2 else "control"], u, exposed[u]) for i, u in enumerate(ids)],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )  # fmt: skip
    events: list[Any] = []
    props: list[Any] = []
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for i, u in enumerate(ids):
        _purchase(u, exposed[u] - dt.timedelta(days=2), f"{rng.uniform(5, 50):.2f}", events, props)
        for k in range(rng.randrange(0, 4 + i % 2)):
            at = exposed[u] + dt.timedelta(hours=2 + 17 * k)
            if at < now:
                amount = "n/a" if rng.random() < 0.05 else f"{rng.uniform(5, 80) + 10 * (i % 2):.2f}"
                _purchase(u, at, amount, events, props)
        for k in range(rng.randrange(1, 7)):
            if (at := exposed[u] + dt.timedelta(hours=3 + 11 * k)) < now:
                events.append(_event(u, "open", at))
    await copy_events(conn, events, props)
    return ids


async def _answer(db: Database, cached: bool) -> Any:
    async with db.transaction() as c:
        return msgspec.to_builtins(await daily_results(c, "checkout", cached=cached))


async def _computed(conn: asyncpg.Connection) -> dict[dt.date, dt.datetime]:
    rows = await conn.fetch("SELECT day, computed_at FROM experiment_daily_results ORDER BY day")
    return {r["day"]: r["computed_at"] for r in rows}


async def test_the_stored_series_equals_the_recompute_and_is_computed_once(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    await _arrange(client, actors, conn)
    expected = await _answer(db, cached=False)
    assert len(expected["metrics"]) == 4
    assert [p["day"] for p in expected["metrics"][0]["days"]][-1] == TODAY.isoformat()
    assert await _computed(conn) == {}  # the recompute reads and writes nothing
    assert await run_daily_results(db) == 6  # the six closed days
    first = await _computed(conn)
    assert sorted(first) == [START.date() + dt.timedelta(days=i) for i in range(6)]
    # The endpoint reads them (and computes today), with the same answer as computing every day.
    r = await client.get("/v1/experiments/checkout/results/daily", headers=actors.analyst)
    assert r.status_code == 200
    assert r.json() == msgspec.json.decode(msgspec.json.encode(expected))
    assert await _answer(db, cached=True) == expected
    # A second run recomputes nothing: every computed_at is unchanged, and nothing was written for today.
    assert await run_daily_results(db) == 0
    assert await _computed(conn) == first


async def test_the_endpoint_fills_missing_days_and_the_job_then_has_none(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    await _arrange(client, actors, conn)
    expected = await _answer(db, cached=False)
    assert await run_daily_results(db, Budget(2, 60.0)) == 2  # the budget bounds a run
    assert len(await _computed(conn)) == 2
    assert await _answer(db, cached=True) == expected  # stores the four others
    assert len(await _computed(conn)) == 6
    assert await run_daily_results(db) == 0


async def test_a_late_event_recomputes_its_day_and_the_later_ones_only(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    ids = await _arrange(client, actors, conn)
    await run_daily_results(db)
    before = await _computed(conn)
    answer_before = await _answer(db, cached=True)
    late_day = START.date() + dt.timedelta(days=3)
    # An offline queue flushed now: a purchase made on day 3 by a user exposed on day 0.
    _events: list[Any] = []
    _props: list[Any] = []
    _purchase(ids[0], dt.datetime.combine(late_day, dt.time(12)), "77.00", _events, _props)
    await copy_events(conn, _events, _props)
    expected = await _answer(db, cached=False)
    assert expected != answer_before
    assert await run_daily_results(db) == 3  # days 3, 4 and 5
    after = await _computed(conn)
    assert {d for d in after if after[d] != before[d]} == {late_day + dt.timedelta(days=i) for i in range(3)}
    assert await _answer(db, cached=True) == expected
    assert await run_daily_results(db) == 0


async def test_a_late_event_is_seen_by_the_endpoint_before_the_job_runs(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    ids = await _arrange(client, actors, conn)
    await run_daily_results(db)
    _events = [_event(ids[1], "open", dt.datetime.combine(START.date() + dt.timedelta(days=4), dt.time(9)))]
    await copy_events(conn, _events, [])
    expected = await _answer(db, cached=False)
    assert await _answer(db, cached=True) == expected  # recomputes (and stores) days 4 and 5
    assert await run_daily_results(db) == 0


async def test_a_changed_metric_definition_recomputes_every_day(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    await _arrange(client, actors, conn)
    await run_daily_results(db)
    before = await _computed(conn)
    r = await client.patch("/v1/metrics/opens", json={"window_hours": 24}, headers=actors.admin)
    assert r.status_code == 200, r.text
    expected = await _answer(db, cached=False)
    assert await run_daily_results(db) == 6
    after = await _computed(conn)
    assert all(after[d] != before[d] for d in before)
    assert await _answer(db, cached=True) == expected


async def test_today_stays_live(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    ids = await _arrange(client, actors, conn)
    await run_daily_results(db)
    before = await _computed(conn)
    first = await _answer(db, cached=True)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    await copy_events(conn, [_event(u, "open", now - dt.timedelta(seconds=1)) for u in ids[:60]], [])
    second = await _answer(db, cached=True)
    assert second == await _answer(db, cached=False)
    opens = next(m for m in second["metrics"] if m["metric"] == "opens")["days"]
    was = next(m for m in first["metrics"] if m["metric"] == "opens")["days"]
    assert opens[:-1] == was[:-1]  # the closed days are as stored
    assert opens[-1] != was[-1]  # today counts the new opens
    assert await _computed(conn) == before
    assert TODAY not in await _computed(conn)
    # With the per-unit state folded, today's point is what GET /results says now (read from the state).
    async with db.transaction() as c:
        assert await fold_unit_values(c) > 0
    third = await _answer(db, cached=True)
    r = await client.get("/v1/experiments/checkout/results", headers=actors.analyst)
    assert r.status_code == 200
    now = {
        m["metric"]: {v["name"]: (v["units"], v["mean"]) for v in m["variants"]} for m in r.json()["metrics"]
    }
    for m in third["metrics"]:
        point = {v["name"]: (v["units"], v["mean"]) for v in m["days"][-1]["variants"]}
        assert point.keys() == now[m["metric"]].keys()
        for name, (units, mean) in point.items():
            assert units == now[m["metric"]][name][0]
            assert mean == pytest.approx(now[m["metric"]][name][1], rel=1e-9)


async def test_a_new_identity_link_recomputes_from_the_units_exposure(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    r = await client.post(
        "/v1/metrics", json={"name": "buys", "kind": "count", "event": "purchase", "direction": "increase"},
        headers=actors.admin,
    )  # fmt: skip
    assert r.status_code == 201
    await create(
        client,
        actors.admin,
        "paywall",
        unit="anonymous",
        primary_metric="buys",
        start_date=START.date().isoformat(),
    )
    test_id, arms = await variant_ids(conn, "paywall")
    anons = [f"anon-{i}" for i in range(20)]
    exposed = [START + dt.timedelta(hours=6 * i) for i in range(20)]  # days 0 to 4
    await conn.copy_records_to_table(
        "experiment_unit_assignments",
        records=[(uuid.uuid4(), test_id, arms["green" if i % 2 else "control"], "anonymous", a, exposed[i]) for i, a in enumerate(anons)],
        columns=["assignment_id", "test_id", "variant_id", "unit_type", "unit_id", "assigned_at"],
    )  # fmt: skip
    # Purchases under the anonymous ids, and some under a signed-in userId with no anonymous id.
    rows = [
        (uuid.uuid4(), "purchase", "test", exposed[i] + dt.timedelta(hours=1), a, None)
        for i, a in enumerate(anons)
    ]
    rows += [
        (uuid.uuid4(), "purchase", "test", exposed[12] + dt.timedelta(hours=2 + k), None, "user_12")
        for k in range(3)
    ]
    await conn.copy_records_to_table(
        "analytics_events", records=rows,
        columns=["event_id", "event_name", "event_category", "timestamp", "anonymous_id", "external_user_id"],
    )  # fmt: skip
    async with db.transaction() as c:
        recompute = msgspec.to_builtins(await daily_results(c, "paywall", cached=False))
    await run_daily_results(db)
    before = await _computed(conn)
    # identify links anon-12 (exposed on day 3) to user_12: user_12's purchases now count for it.
    await conn.execute(
        """INSERT INTO experiment_identity_links (anonymous_id, external_user_id, source, linked_at)
           VALUES ('anon-12', 'user_12', 'identify', $1)""",
        exposed[12],
    )
    async with db.transaction() as c:
        expected = msgspec.to_builtins(await daily_results(c, "paywall", cached=False))
    assert expected != recompute
    assert await run_daily_results(db) == 3  # days 3, 4, 5
    after = await _computed(conn)
    changed = {d for d in after if after[d] != before[d]}
    assert changed == {exposed[12].date() + dt.timedelta(days=i) for i in range(3)}
    async with db.transaction() as c:
        assert msgspec.to_builtins(await daily_results(c, "paywall", cached=True)) == expected


async def test_erasure_drops_the_stored_days_of_the_users_tests(
    client: Client, actors: Actors, conn: asyncpg.Connection, db: Database
) -> None:
    ids = await _arrange(client, actors, conn)
    await run_daily_results(db)
    from experiments.hooks import on_user_erased

    async with db.transaction() as c:
        counts = await on_user_erased(c, ids[0])
    assert counts["experiment_daily_results"] == 6
    assert await _answer(db, cached=True) == await _answer(db, cached=False)


@pytest.mark.parametrize("alpha", ["0", "1", "nan"])
async def test_a_bad_alpha_is_422(client: Client, actors: Actors, alpha: str) -> None:
    await create(client, actors.admin)
    r = await client.get(f"/v1/experiments/checkout/results/daily?alpha={alpha}", headers=actors.analyst)
    assert r.status_code == 422


async def test_the_cli_runs_the_job_by_hand(
    client: Client, actors: Actors, conn: asyncpg.Connection, clean_db: str
) -> None:
    await _arrange(client, actors, conn)

    async def rollup(*args: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "corp_astro.cli", "experiments", "rollup-daily", *args],
            cwd=ROOT, env={**os.environ, "DATABASE_URL": clean_db}, capture_output=True, text=True,
            timeout=120, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    assert await rollup("--days", "4") == "4 day(s) computed"
    assert len(await _computed(conn)) == 4
    assert await rollup() == "2 day(s) computed"
    assert await rollup() == "0 day(s) computed"
