"""Per-unit metric state (experiment_unit_values): results read from it equal the live statement's.

Each check computes the live statement's rows (``Plan.fetch`` with the experiment's own bound: always
live) and the state's (``read_state``: the state plus the events ingested since its mark), and asserts
every sum equal to 1e-9, across folds, late events, events outside windows and after the end, new
units, identity links added after the events, a definition change, and two concurrent job runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import uuid
from typing import Any

import asyncpg
import pytest

from experiments.metric_sql import unit_source
from experiments.service import get_experiment
from experiments.service.metric_results import Plan
from experiments.service.metrics import analysis_of
from experiments.service.unit_state import read_state, until_of
from experiments.service.unit_state_job import fold_unit_values
from experiments.unit_state_repository import Fold
from experiments.unit_state_sql import Layout, read_users_sql
from kernel.scheduler import try_job_lock
from tests.integration.experiments.conftest import Actors, Client, create, make_users, variant_ids

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
EXPOSED = NOW - dt.timedelta(days=6)

_METRICS = [
    {"name": "revenue", "kind": "sum", "event": "buy", "property": "amount", "direction": "increase", "cap_percentile": 0.9},
    {"name": "avg_order", "kind": "mean", "event": "buy", "property": "amount", "direction": "increase"},
    {"name": "buys_48h", "kind": "count", "event": "buy", "window_hours": 48, "direction": "increase"},
    {"name": "bought", "kind": "binomial", "event": "buy", "direction": "increase"},
    {"name": "sessions", "kind": "count", "event": "session", "direction": "increase"},
    {"name": "rev_per_session", "kind": "ratio", "numerator": "revenue", "denominator": "sessions", "direction": "increase"},
    {"name": "crashes", "kind": "count", "event": "crash", "direction": "decrease"},
    {"name": "returned", "kind": "retention", "event": "session", "retention_days": [1, 3], "direction": "increase"},
]  # fmt: skip
_ROLES = {
    "primary_metric": "revenue",
    "secondary_metrics": ["avg_order", "buys_48h", "bought", "rev_per_session"],
    "guardrail_metrics": ["crashes", "returned"],
}
_EVENT_COLUMNS = [
    "event_id",
    "user_id",
    "anonymous_id",
    "external_user_id",
    "event_name",
    "event_category",
    "timestamp",
]


async def _define(client: Client, actors: Actors, **overrides: Any) -> None:
    for body in _METRICS:
        r = await client.post("/v1/metrics", json=body, headers=actors.admin)
        assert r.status_code == 201, r.text
    await create(client, actors.admin, **{**_ROLES, **overrides})


async def _rows(conn: asyncpg.Connection, *, state: bool) -> list[dict[str, Any]] | None:
    exp = await get_experiment(conn, "checkout")
    plan = Plan.of(await analysis_of(conn, exp.test_id))
    if not state:
        return await plan.fetch(conn, exp, unit_source(exp.unit), until=until_of(exp))
    ratios = [
        (plan.index[m.parts[0].metric_id], plan.index[m.parts[1].metric_id]) for m in plan.ratio_metrics
    ]
    async with conn.transaction():
        return await read_state(
            conn, exp, plan.parts, ratios, cuped=plan.lookback is not None, history=plan.history
        )


async def _same(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """The state's rows equal the live statement's (1e-9 relative); returns them."""
    live = await _rows(conn, state=False)
    state = await _rows(conn, state=True)
    assert live is not None
    assert state is not None, "the state is not current"
    assert len(live) == len(state) > 0
    by_variant = {r["variant_id"]: r for r in state}
    for row in live:
        other = by_variant[row["variant_id"]]
        assert other["n"] == row["n"]
        for key, value in row.items():
            if key in ("variant_id", "dim", "sv", "sd", "n", "lookback_days"):
                continue
            a, b = float(value or 0), float(other[key] or 0)
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (key, a, b)
    return live


async def _fold(conn: asyncpg.Connection) -> int:
    async with conn.transaction():
        return await fold_unit_values(conn)


async def _state(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT unit_id, variant_id, exposed_at, v FROM experiment_unit_values ORDER BY 1"
    )
    return [tuple(r) for r in rows]


def _user_events(
    rng: random.Random, users: list[uuid.UUID], base: dt.datetime
) -> tuple[list[Any], list[Any]]:
    """Buys (amounts, some not numbers) and sessions around exposure: before the lookback, in it, in and
    past the 48 h window, past the retention days; crashes now and then."""
    events: list[Any] = []
    props: list[Any] = []
    for u in users:
        for _ in range(rng.randrange(0, 6)):
            at = base + dt.timedelta(hours=rng.uniform(-20 * 24, 5 * 24))
            ev = (uuid.uuid4(), u, None, None, "buy", "test", at)
            events.append(ev)
            amount = "n/a" if rng.random() < 0.1 else f"{rng.uniform(1, 100):.2f}"
            props.append((uuid.uuid4(), ev[0], "amount", amount, at))
        for _ in range(rng.randrange(0, 5)):
            events.append(
                (
                    uuid.uuid4(),
                    u,
                    None,
                    None,
                    "session",
                    "test",
                    base + dt.timedelta(hours=rng.uniform(-48, 120)),
                )
            )
        if rng.random() < 0.3:
            events.append(
                (uuid.uuid4(), u, None, None, "crash", "test", base + dt.timedelta(hours=rng.uniform(0, 100)))
            )
    return events, props


async def _copy(conn: asyncpg.Connection, events: list[Any], props: list[Any]) -> None:
    await conn.copy_records_to_table("analytics_events", records=events, columns=_EVENT_COLUMNS)
    await conn.copy_records_to_table(
        "event_properties",
        records=props,
        columns=["property_id", "event_id", "property_name", "property_value", "timestamp"],
    )


async def _assign(conn: asyncpg.Connection, n: int, at: dt.datetime) -> list[uuid.UUID]:
    test_id, arms = await variant_ids(conn, "checkout")
    ids = await make_users(conn, n)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[(uuid.uuid4(), test_id, list(arms.values())[i % 2], u, at) for i, u in enumerate(ids)],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )
    return ids


async def test_state_equals_the_live_statement_for_users(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await _define(client, actors)
    rng = random.Random(16)
    users = await _assign(conn, 200, EXPOSED)
    await _copy(conn, *_user_events(rng, users, EXPOSED))
    assert await _rows(conn, state=True) is None  # no state yet: the request reads live
    assert await _fold(conn) == 200  # a row per unit, with or without events
    # A rebuild refreshes the planner's statistics of the state (analyzed in the job's transaction).
    stats = "SELECT reltuples FROM pg_class WHERE relname = 'experiment_unit_values'"
    assert await conn.fetchval(stats) >= 200
    first = await _same(conn)
    assert any(r["s0"] for r in first)  # skipped values
    assert any(r["c0"] for r in first)  # a cap
    # Late events (old timestamps, ingested now) and new units: the request folds them in itself...
    late_users = await _assign(conn, 50, EXPOSED + dt.timedelta(days=1))
    await _copy(conn, *_user_events(rng, users[:80] + late_users, EXPOSED + dt.timedelta(hours=5)))
    assert await _same(conn) != first
    # ...and the job writes them; run again with nothing new, nothing changes.
    await _fold(conn)
    await _same(conn)
    before = await _state(conn)
    await _fold(conn)
    assert await _state(conn) == before
    # An erased account's assignment is gone: its row no longer counts.
    await conn.execute("DELETE FROM ab_test_assignments WHERE user_id = ANY($1::uuid[])", users[:3])
    await _same(conn)
    # Events after the experiment's end do not count: a new end date is a new definition (rebuilt). So
    # is a new CUPED lookback; switching CUPED off needs no rebuild.
    for change in (
        {"end_date": (NOW - dt.timedelta(days=2)).date().isoformat()},
        {"cuped": {"enabled": True, "lookback_days": 3}},
    ):
        await _patch(client, actors, change)
        assert await _rows(conn, state=True) is None
        await _fold(conn)
        await _same(conn)
    await _patch(client, actors, {"cuped": {"enabled": False, "lookback_days": 3}})
    assert all(r["x1"] == 0 for r in await _same(conn))


async def _patch(client: Client, actors: Actors, change: dict[str, Any]) -> None:
    r = await client.patch("/v1/experiments/checkout", json=change, headers=actors.admin)
    assert r.status_code == 200, r.text


async def test_the_results_route_reads_the_state(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    """GET .../results answers the same before the first fold (live) and after it (from the state)."""
    await _define(client, actors)
    users = await _assign(conn, 100, EXPOSED)
    await _copy(conn, *_user_events(random.Random(5), users, EXPOSED))
    live = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    await _fold(conn)
    assert await _rows(conn, state=True) is not None
    state = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    assert [m["metric"] for m in state["metrics"]] == [m["metric"] for m in live["metrics"]]
    for a, b in zip(live["metrics"], state["metrics"], strict=True):
        for va, vb in zip(a["variants"], b["variants"], strict=True):
            assert va.pop("name") == vb.pop("name")
            assert va == pytest.approx(vb, rel=1e-9)
        for ca, cb in zip(a["comparisons"], b["comparisons"], strict=True):
            assert ca["p_value"] == pytest.approx(cb["p_value"], rel=1e-6)
            assert ca["absolute_lift"] == pytest.approx(cb["absolute_lift"], rel=1e-9)


async def test_a_commit_behind_the_watermark_counts_once(
    client: Client, actors: Actors, conn: asyncpg.Connection, clean_db: str
) -> None:
    """An event whose transaction started before a fold and committed after it (so its created_at is
    older than that fold's start) is folded by the next run, once; two concurrent runs fold once."""
    await _define(client, actors)
    users = await _assign(conn, 20, EXPOSED)
    await _copy(conn, *_user_events(random.Random(3), users, EXPOSED))
    await _fold(conn)
    other = await asyncpg.connect(clean_db, server_settings={"timezone": "UTC"})
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1")  # the transaction's start: its rows' created_at
        await asyncio.sleep(0.05)
        await other.copy_records_to_table(
            "analytics_events",
            records=[
                (uuid.uuid4(), users[0], None, None, "session", "test", EXPOSED + dt.timedelta(hours=1))
            ],
            columns=_EVENT_COLUMNS,
        )
        await _fold(conn)  # cannot see it, and must not move past it
        await tx.commit()
    finally:
        await other.close()
    await _same(conn)
    second = await asyncpg.connect(clean_db, server_settings={"timezone": "UTC"})

    async def job(c: asyncpg.Connection) -> bool:
        async with c.transaction():
            if not await try_job_lock(c, "experiments.unit_values"):
                return False
            await fold_unit_values(c)
            await asyncio.sleep(0.2)  # hold the lock while the other run tries
            return True

    try:
        ran = await asyncio.gather(job(conn), job(second))
    finally:
        await second.close()
    assert sorted(ran) == [False, True]
    rows = await _same(conn)
    sessions = sum(float(r["y4"] or 0) for r in rows)
    expected = await conn.fetchval(
        """SELECT count(*) FROM analytics_events e JOIN ab_test_assignments a ON a.user_id = e.user_id
           WHERE e.event_name = 'session' AND e."timestamp" >= a.assigned_at"""
    )
    assert sessions == expected


@pytest.mark.parametrize("unit", ["anonymous", "external"])
async def test_identity_links_added_after_the_events(
    client: Client, actors: Actors, conn: asyncpg.Connection, unit: str
) -> None:
    await _define(client, actors, unit=unit)
    test_id, arms = await variant_ids(conn, "checkout")
    ids = [f"{unit[:3]}-{i}" for i in range(30)]
    await conn.copy_records_to_table(
        "experiment_unit_assignments",
        records=[
            (uuid.uuid4(), test_id, list(arms.values())[i % 2], unit, u, EXPOSED + dt.timedelta(minutes=i))
            for i, u in enumerate(ids)
        ],
        columns=["assignment_id", "test_id", "variant_id", "unit_type", "unit_id", "assigned_at"],
    )
    own, other = (
        ("anonymous_id", "external_user_id") if unit == "anonymous" else ("external_user_id", "anonymous_id")
    )
    rng = random.Random(7)
    events: list[Any] = []

    def event(name: str, **idents: str | None) -> None:
        at = EXPOSED + dt.timedelta(hours=rng.uniform(-30, 100))
        events.append(
            (uuid.uuid4(), None, idents.get("anonymous_id"), idents.get("external_user_id"), name, "test", at)
        )

    for i, u in enumerate(ids):
        for _ in range(3):
            event("session", **{own: u})
            # Under the other id only: counts for the unit once a link ties them (none yet).
            event("session", **{other: f"o-{i % 10}"})
            event("crash", **{other: f"o-{i % 10}"})
    await _copy(conn, events, [])
    await _fold(conn)
    before = await _same(conn)
    # Links arrive: o-k to units k and k+10 (the earlier assigned takes the other id's events).
    links = [
        (u if unit == "anonymous" else f"o-{i % 10}", f"o-{i % 10}" if unit == "anonymous" else u)
        for i, u in enumerate(ids[:20])
    ]
    await conn.executemany(
        """INSERT INTO experiment_identity_links (anonymous_id, external_user_id, source, linked_at)
           VALUES ($1, $2, 'identify', LOCALTIMESTAMP)""",
        links,
    )
    assert await _same(conn) != before  # the request recomputes the relinked units
    await _fold(conn)
    await _same(conn)
    # A unit assigned later but exposed earlier than the linked ones takes their other id's events.
    await conn.execute(
        """INSERT INTO experiment_unit_assignments (test_id, variant_id, unit_type, unit_id, assigned_at)
           VALUES ($1, $2, $3, 'early', $4)""",
        test_id, next(iter(arms.values())), unit, EXPOSED - dt.timedelta(days=1),
    )  # fmt: skip
    await conn.execute(
        """INSERT INTO experiment_identity_links (anonymous_id, external_user_id, source, linked_at)
           VALUES ($1, $2, 'identify', LOCALTIMESTAMP)""",
        *(("early", "o-3") if unit == "anonymous" else ("o-3", "early")),
    )
    await _same(conn)
    await _fold(conn)
    await _same(conn)
    before = await _state(conn)
    await _fold(conn)
    assert await _state(conn) == before


async def test_the_count_check_path_and_its_fallback(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    """User units: with no unit assigned since the fold the state is read without the assignments'
    keys (rows carry same = true); a new assignment or an erased one makes it false (read_sql is used),
    and the erased account's row goes with its assignment (the foreign key)."""
    await _define(client, actors)
    users = await _assign(conn, 60, EXPOSED)
    await _copy(conn, *_user_events(random.Random(9), users, EXPOSED))
    await _fold(conn)

    async def same() -> bool:
        exp = await get_experiment(conn, "checkout")
        plan = Plan.of(await analysis_of(conn, exp.test_id))
        mark = await conn.fetchval("SELECT ingested_through FROM experiment_unit_value_marks")
        f = Fold(exp.test_id, exp.unit, Layout(plan.parts), until_of(exp), plan.history, mark, None)
        rows = await conn.fetch(read_users_sql(f.layout, [], True), *f.args())
        return all(r["same"] for r in rows)

    assert await same()
    await _copy(conn, *_user_events(random.Random(10), users[:10], EXPOSED))  # events alone: still same
    assert await same()
    await _same(conn)
    await _assign(conn, 1, EXPOSED)
    assert not await same()
    await _same(conn)
    await _fold(conn)
    assert await same()
    await conn.execute("DELETE FROM ab_test_assignments WHERE user_id = $1", users[0])
    assert (
        await conn.fetchval("SELECT count(*) FROM experiment_unit_values WHERE user_id = $1", users[0]) == 0
    )
    assert await same()
    await _same(conn)
