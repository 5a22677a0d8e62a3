"""Dimension slices and the daily series of an experiment whose only metric is its legacy ``goal_event``:
the conversion is broken down, and followed day by day, as the binomial metric it is (issue 15: "the
existing goal_event becomes a binomial metric")."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from tests.integration.experiments.conftest import (
    Actors,
    Client,
    copy_events,
    create,
    make_users,
    variant_ids,
)

EXPOSED = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(days=2)


async def test_a_goal_event_experiment_is_broken_down_by_its_conversion(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await create(client, actors.admin, goal_event="purchase")
    test_id, arms = await variant_ids(conn, "checkout")
    ids = await make_users(conn, 40)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[(uuid.uuid4(), test_id, arms["green" if i % 2 else "control"], u, EXPOSED) for i, u in enumerate(ids)],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )  # fmt: skip
    # Users 0-19 on iOS, 20-29 on Android, 30-39 without events. Every third iOS and every second Android
    # user buys after exposure; user 1 bought only before exposure (not a conversion).
    events, props = [], []
    converted = {"iOS": {"control": 0, "green": 0}, "Android": {"control": 0, "green": 0}}
    for i, u in enumerate(ids[:30]):
        os_name = "iOS" if i < 20 else "Android"
        buys = i % 3 == 0 if os_name == "iOS" else i % 2 == 0
        at = EXPOSED + dt.timedelta(hours=1)
        ev = (uuid.uuid4(), u, "purchase" if buys else "open", "test", at)
        events.append(ev)
        props.append((uuid.uuid4(), ev[0], "context.os", f'{{"name": "{os_name}"}}', at))
        if i == 1:
            events.append((uuid.uuid4(), u, "purchase", "test", EXPOSED - dt.timedelta(hours=1)))
        converted[os_name]["green" if i % 2 else "control"] += buys
    await copy_events(conn, events, props)

    r = await client.get("/v1/experiments/checkout/results/dimensions/os", headers=actors.analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["note"] is None
    assert [(s["value"], s["units"]) for s in body["slices"]] == [
        ("iOS", 20),
        ("Android", 10),
        ("unknown", 10),
    ]
    for s in body["slices"]:
        (metric,) = s["metrics"]
        assert (metric["metric"], metric["role"], metric["kind"]) == ("purchase", "primary", "binomial")
        totals = {v["name"]: v["total"] for v in metric["variants"]}
        assert totals == {
            k: float(n) for k, n in converted.get(s["value"], {"control": 0, "green": 0}).items()
        }
        assert all(c["cuped"] is False and c["adjusted_p_value"] is None for c in metric["comparisons"])


async def test_an_experiment_with_neither_metrics_nor_goal_has_no_slices(
    client: Client, actors: Actors
) -> None:
    await create(client, actors.admin)
    r = await client.get("/v1/experiments/checkout/results/dimensions/os", headers=actors.analyst)
    assert r.status_code == 200
    assert (r.json()["slices"], "goal_event" in r.json()["note"]) == ([], True)


async def test_a_goal_event_experiment_has_a_daily_series_of_its_conversion(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await create(client, actors.admin, goal_event="purchase")
    test_id, arms = await variant_ids(conn, "checkout")
    ids = await make_users(conn, 12)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[(uuid.uuid4(), test_id, arms["green" if i % 2 else "control"], u, EXPOSED) for i, u in enumerate(ids)],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )  # fmt: skip
    # Users 0-3 buy on the day of exposure, 4-7 the next day (user 4 twice), 8-11 never.
    events = [
        (uuid.uuid4(), u, "purchase", "test", EXPOSED + dt.timedelta(days=i // 4, minutes=10 + i))
        for i, u in enumerate(ids[:8])
    ]
    events.append((uuid.uuid4(), ids[4], "purchase", "test", EXPOSED + dt.timedelta(days=1, hours=2)))
    await copy_events(conn, events, [])

    r = await client.get("/v1/experiments/checkout/results/daily", headers=actors.analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    (metric,) = body["metrics"]
    assert (metric["metric"], metric["role"]) == ("purchase", "primary")
    first = EXPOSED.date()
    points = {p["day"]: {v["name"]: (v["units"], v["mean"]) for v in p["variants"]} for p in metric["days"]}
    assert points[first.isoformat()] == {"control": (6, 2 / 6), "green": (6, 2 / 6)}
    for later in (first + dt.timedelta(days=1), first + dt.timedelta(days=2)):
        assert points[later.isoformat()] == {"control": (6, 4 / 6), "green": (6, 4 / 6)}
