"""Per-metric results from ingested events: the sums the SQL computes equal the sums of the raw rows, and
the statistics on them are experiments.stats' (equal to gbstats: tests/unit/experiments/test_metric_stats.py).

The data: two arms of registered users, purchase events with an ``amount`` property (some not numbers)
before and after exposure, sessions, and crashes that the treatment raises (a guardrail).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import pytest

from experiments import stats
from tests.integration.experiments.conftest import (
    Actors,
    Client,
    copy_events,
    create,
    make_users,
    variant_ids,
)

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
EXPOSED = NOW - dt.timedelta(days=5)


async def _metrics(client: Client, actors: Actors) -> None:
    bodies = [
        {"name": "revenue", "kind": "sum", "event": "purchase", "property": "amount", "direction": "increase"},
        {"name": "avg_order", "kind": "mean", "event": "purchase", "property": "amount", "direction": "increase"},
        {"name": "purchases", "kind": "count", "event": "purchase", "direction": "increase", "window_hours": 48},
        {"name": "purchased", "kind": "binomial", "event": "purchase", "direction": "increase"},
        {"name": "sessions", "kind": "count", "event": "session", "direction": "increase"},
        {"name": "rev_per_session", "kind": "ratio", "numerator": "revenue", "denominator": "sessions", "direction": "increase"},
        {"name": "crashes", "kind": "count", "event": "crash", "direction": "decrease"},
        {"name": "returned", "kind": "retention", "event": "session", "retention_days": [1, 3], "direction": "increase"},
    ]  # fmt: skip
    for body in bodies:
        r = await client.post("/v1/metrics", json=body, headers=actors.admin)
        assert r.status_code == 201, r.text


def _event(user: uuid.UUID, name: str, at: dt.datetime) -> tuple[Any, ...]:
    return (uuid.uuid4(), user, name, "test", at)


async def _arrange(
    conn: asyncpg.Connection, arms: dict[str, uuid.UUID], test_id: uuid.UUID
) -> dict[str, Any]:
    """Users, assignments and events; returns the raw rows the expectations are computed from."""
    rng = random.Random(15)
    events: list[tuple[Any, ...]] = []
    props: list[tuple[Any, ...]] = []
    users: dict[uuid.UUID, str] = {}
    for arm, variant_id in arms.items():
        ids = await make_users(conn, 300)
        await conn.copy_records_to_table(
            "ab_test_assignments",
            records=[(uuid.uuid4(), test_id, variant_id, u, EXPOSED) for u in ids],
            columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
        )
        for u in ids:
            users[u] = arm
            base = rng.random()
            for k in range(rng.randrange(0, 4)):  # purchases before exposure (CUPED's covariate)
                ev = _event(u, "purchase", EXPOSED - dt.timedelta(days=1 + k, hours=rng.randrange(0, 20)))
                events.append(ev)
                props.append(
                    (uuid.uuid4(), ev[0], "amount", f"{10 + 40 * base + rng.gauss(0, 5):.2f}", ev[4])
                )
            for k in range(rng.randrange(0, 4 if arm == "control" else 5)):  # purchases after
                ev = _event(u, "purchase", EXPOSED + dt.timedelta(hours=1 + 30 * k + rng.randrange(0, 20)))
                events.append(ev)
                amount = "n/a" if rng.random() < 0.05 else f"{10 + 40 * base + rng.gauss(0, 5):.2f}"
                props.append((uuid.uuid4(), ev[0], "amount", amount, ev[4]))
            for k in range(rng.randrange(1, 6)):
                events.append(_event(u, "session", EXPOSED + dt.timedelta(hours=2 + 20 * k)))
            for _ in range(rng.randrange(0, 2) + (rng.random() < 0.4 if arm == "treatment" else 0)):
                events.append(_event(u, "crash", EXPOSED + dt.timedelta(hours=3)))
    await copy_events(conn, events, props)
    amounts = {p[1]: p[3] for p in props}
    return {"users": users, "events": events, "amounts": amounts}


def _per_unit(
    raw: dict[str, Any], name: str, lo: dt.timedelta, hi: dt.timedelta, value: str
) -> dict[uuid.UUID, float]:
    """Each user's value over its events of ``name`` in [exposure + lo, exposure + hi)."""
    vals: dict[uuid.UUID, list[float]] = defaultdict(list)
    skipped = 0
    for event_id, user, ev_name, _, at in raw["events"]:
        if ev_name != name or not EXPOSED + lo <= at < EXPOSED + hi:
            continue
        if value in ("sum", "mean"):
            try:
                vals[user].append(float(raw["amounts"][event_id]))
            except ValueError:
                skipped += 1
                vals.setdefault(user, [])
        else:
            vals[user].append(1.0)
    out = {}
    for user in raw["users"]:
        v = vals.get(user, [])
        out[user] = {"sum": sum(v), "count": float(len(v)), "mean": sum(v) / len(v) if v else 0.0,
                     "binary": 1.0 if user in vals else 0.0}[value]  # fmt: skip
    raw.setdefault("skipped", {})[name + value] = skipped
    return out


def _stats(
    raw: dict[str, Any],
    arm: str,
    y: dict[uuid.UUID, float],
    x: dict[uuid.UUID, float] | None,
    binary: bool = False,
) -> Any:
    ys = [y[u] for u, a in raw["users"].items() if a == arm]
    cls = stats.ProportionStats if binary else stats.SampleMeanStats
    post = cls(len(ys), sum(ys), sum(v * v for v in ys))
    if x is None:
        return post
    xs = [x[u] for u, a in raw["users"].items() if a == arm]
    pre = cls(len(xs), sum(xs), sum(v * v for v in xs))
    return stats.RegressionAdjustedStats(len(ys), post, pre, sum(a * b for a, b in zip(ys, xs, strict=True)))


def _check(comparison: dict[str, Any], a: Any, b: Any) -> None:
    expected = stats.welch_test(a, b)
    relative = stats.welch_test(a, b, relative=True)
    assert expected is not None
    assert relative is not None
    assert comparison["absolute_lift"] == pytest.approx(expected.estimate, abs=1e-9)
    assert comparison["absolute_ci"] == pytest.approx(list(expected.ci), abs=1e-9)
    assert comparison["p_value"] == pytest.approx(expected.p_value, abs=1e-9)
    assert comparison["relative_ci"] == pytest.approx(list(relative.ci), abs=1e-9)
    assert comparison["chance_to_beat_control"] == pytest.approx(stats.chance_to_beat_control(a, b), abs=1e-9)


async def test_metric_results_equal_the_raw_rows(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await _metrics(client, actors)
    await create(
        client, actors.admin, goal_event="purchase", primary_metric="revenue",
        secondary_metrics=["avg_order", "purchases", "purchased", "rev_per_session", "returned"],
        guardrail_metrics=["crashes"], correction="bh",
        variants=[{"name": "control", "traffic_percentage": 50}, {"name": "treatment", "traffic_percentage": 50}],
    )  # fmt: skip
    test_id, arms = await variant_ids(conn, "checkout")
    raw = await _arrange(conn, arms, test_id)
    r = await client.get("/v1/experiments/checkout/results", headers=actors.analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["correction"] == "bh"
    by_name = {m["metric"]: m for m in body["metrics"]}
    assert [m["metric"] for m in body["metrics"]] == [
        "revenue", "avg_order", "purchases", "purchased", "rev_per_session", "returned", "crashes"
    ]  # fmt: skip
    after, before = (dt.timedelta(0), dt.timedelta(days=3650)), (dt.timedelta(days=-14), dt.timedelta(0))
    revenue = _per_unit(raw, "purchase", *after, "sum")
    assert by_name["revenue"]["skipped_values"] == raw["skipped"]["purchasesum"] > 0
    revenue_pre = _per_unit(raw, "purchase", *before, "sum")
    assert by_name["revenue"]["comparisons"][0]["cuped"] is True
    _check(by_name["revenue"]["comparisons"][0],
           _stats(raw, "control", revenue, revenue_pre), _stats(raw, "treatment", revenue, revenue_pre))  # fmt: skip
    assert by_name["revenue"]["variants"][0]["mean"] == pytest.approx(
        sum(v for u, v in revenue.items() if raw["users"][u] == "control") / 300, abs=1e-9
    )
    mean, mean_pre = _per_unit(raw, "purchase", *after, "mean"), _per_unit(raw, "purchase", *before, "mean")
    _check(
        by_name["avg_order"]["comparisons"][0],
        _stats(raw, "control", mean, mean_pre),
        _stats(raw, "treatment", mean, mean_pre),
    )
    count48 = _per_unit(raw, "purchase", dt.timedelta(0), dt.timedelta(hours=48), "count")
    count_pre = _per_unit(raw, "purchase", *before, "count")
    _check(
        by_name["purchases"]["comparisons"][0],
        _stats(raw, "control", count48, count_pre),
        _stats(raw, "treatment", count48, count_pre),
    )
    did, did_pre = _per_unit(raw, "purchase", *after, "binary"), _per_unit(raw, "purchase", *before, "binary")
    _check(by_name["purchased"]["comparisons"][0],
           _stats(raw, "control", did, did_pre, True), _stats(raw, "treatment", did, did_pre, True))  # fmt: skip
    returned = _per_unit(raw, "session", dt.timedelta(days=1), dt.timedelta(days=3), "binary")
    returned_pre = _per_unit(raw, "session", *before, "binary")
    _check(by_name["returned"]["comparisons"][0],
           _stats(raw, "control", returned, returned_pre, True), _stats(raw, "treatment", returned, returned_pre, True))  # fmt: skip

    sessions = _per_unit(raw, "session", *after, "count")
    ratio = {}
    for arm in ("control", "treatment"):
        us = [u for u, a in raw["users"].items() if a == arm]
        m = stats.SampleMeanStats(len(us), sum(revenue[u] for u in us), sum(revenue[u] ** 2 for u in us))
        d = stats.SampleMeanStats(len(us), sum(sessions[u] for u in us), sum(sessions[u] ** 2 for u in us))
        ratio[arm] = stats.RatioStats(len(us), m, d, sum(revenue[u] * sessions[u] for u in us))
    assert by_name["rev_per_session"]["comparisons"][0]["cuped"] is False
    _check(by_name["rev_per_session"]["comparisons"][0], ratio["control"], ratio["treatment"])

    # BH across the 6 primary/secondary comparisons; the guardrail stays outside the family.
    family = [m["comparisons"][0] for m in body["metrics"] if m["role"] != "guardrail"]
    adjusted = stats.benjamini_hochberg([c["p_value"] for c in family])
    assert [c["adjusted_p_value"] for c in family] == pytest.approx(adjusted, abs=1e-12)
    crash = by_name["crashes"]
    assert crash["role"] == "guardrail"
    assert crash["comparisons"][0]["adjusted_p_value"] is None
    assert crash["comparisons"][0]["absolute_lift"] > 0
    assert crash["comparisons"][0]["harm"] is (crash["comparisons"][0]["p_value"] < 0.05)
    assert crash["comparisons"][0]["harm"] is True
    # Lower is better for crashes: the chance to beat the control is the chance to be below it (gbstats'
    # inverse=True), small here since the treatment raises them.
    crash_post = _per_unit(raw, "crash", *after, "count")
    crash_pre = _per_unit(raw, "crash", *before, "count") if crash["comparisons"][0]["cuped"] else None
    above = stats.chance_to_beat_control(
        _stats(raw, "control", crash_post, crash_pre), _stats(raw, "treatment", crash_post, crash_pre)
    )
    assert above is not None
    below = 1.0 - above
    assert crash["comparisons"][0]["chance_to_beat_control"] == pytest.approx(below, abs=1e-9)
    assert crash["comparisons"][0]["chance_to_beat_control"] < 0.05


async def test_goal_event_is_the_primary_binomial_metric(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    """An experiment defined before metrics: the conversion is listed as its primary metric, unchanged."""
    from tests.integration.experiments.conftest import seed_arm

    await create(client, actors.admin, goal_event="purchase")
    test_id, v = await variant_ids(conn, "checkout")
    await seed_arm(conn, test_id, v["control"], 10000, 1000)
    await seed_arm(conn, test_id, v["green"], 10000, 1100)
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    (metric,) = body["metrics"]
    assert (metric["metric"], metric["role"], metric["kind"]) == ("purchase", "primary", "binomial")
    top, mine = body["comparisons"][0], metric["comparisons"][0]
    for key in (
        "absolute_lift",
        "absolute_ci",
        "relative_ci",
        "p_value",
        "chance_to_beat_control",
        "sequential_p_value",
    ):
        assert mine[key] == top[key]
    assert mine["p_value"] == pytest.approx(0.021068257468733975, abs=1e-6)  # gbstats 0.8.0
    assert [x["units"] for x in metric["variants"]] == [10000, 10000]


async def test_capping_and_empty_arms(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    r = await client.post(
        "/v1/metrics",
        json={
            "name": "rev",
            "kind": "sum",
            "event": "buy",
            "property": "amount",
            "direction": "increase",
            "cap_percentile": 0.5,
        },
        headers=actors.admin,
    )
    assert r.status_code == 201
    await create(client, actors.admin, primary_metric="rev", cuped={"enabled": False, "lookback_days": 14})
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    (metric,) = body["metrics"]  # no assignments yet: no data, no error
    assert metric["comparisons"][0]["p_value"] is None
    test_id, arms = await variant_ids(conn, "checkout")
    ids = await make_users(conn, 4)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[
            (uuid.uuid4(), test_id, arms["control" if i < 2 else "green"], u, EXPOSED)
            for i, u in enumerate(ids)
        ],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )
    events, props = [], []
    for u, amount in zip(ids, ("1", "3", "5", "1000"), strict=True):
        ev = _event(u, "buy", EXPOSED + dt.timedelta(hours=1))
        events.append(ev)
        props.append((uuid.uuid4(), ev[0], "amount", amount, ev[4]))
    await copy_events(conn, events, props)
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    (metric,) = body["metrics"]
    # The median of the non-zero unit values 1, 3, 5, 1000 is 4: 5 and 1000 are capped at 4.
    assert metric["cap_value"] == 4.0
    assert [v["total"] for v in metric["variants"]] == [4.0, 8.0]
    assert metric["comparisons"][0]["cuped"] is False


async def test_anonymous_units_count_their_events(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    """An anonymous experiment: events under the anonymous id count for the unit (stitching is the unit
    join of experiments.unit_repository, tested in test_units.py)."""
    r = await client.post(
        "/v1/metrics",
        json={"name": "opens", "kind": "count", "event": "open", "direction": "increase"},
        headers=actors.admin,
    )
    assert r.status_code == 201
    await create(client, actors.admin, unit="anonymous", primary_metric="opens")
    variant_of = {}
    for i in range(40):
        r = await client.post(
            "/v1/experiments/checkout/assignments", json={"anonymous_id": f"anon-{i}"}, headers=actors.app
        )
        assert r.status_code == 200, r.text
        variant_of[f"anon-{i}"] = r.json()["variant"]
    rows = await conn.fetch("SELECT unit_id, assigned_at FROM experiment_unit_assignments")
    exposed = {r["unit_id"]: r["assigned_at"] for r in rows}
    events = [
        (uuid.uuid4(), f"anon-{i}", "open", "test", exposed[f"anon-{i}"] + dt.timedelta(seconds=1 + k))
        for i in range(40)
        for k in range(i % 3)
    ]
    await conn.copy_records_to_table(
        "analytics_events",
        records=events,
        columns=["event_id", "anonymous_id", "event_name", "event_category", "timestamp"],
    )
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    (metric,) = body["metrics"]
    expected = {"control": 0.0, "green": 0.0}
    for i in range(40):
        expected[variant_of[f"anon-{i}"]] += i % 3
    assert {v["name"]: v["total"] for v in metric["variants"]} == expected
    assert sum(v["units"] for v in metric["variants"]) == 40


async def test_dimension_slices(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    r = await client.post(
        "/v1/metrics",
        json={"name": "opens", "kind": "count", "event": "open", "direction": "increase"},
        headers=actors.admin,
    )
    assert r.status_code == 201
    await create(client, actors.admin, primary_metric="opens")
    test_id, arms = await variant_ids(conn, "checkout")
    ids = await make_users(conn, 60)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[
            (uuid.uuid4(), test_id, arms["control" if i % 2 else "green"], u, EXPOSED)
            for i, u in enumerate(ids)
        ],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )
    # Users 0-29 on iOS, 30-44 on Android, 45-49 on Web (first event), 50-59 without events (unknown).
    os_of = ["iOS"] * 30 + ["Android"] * 15 + ["Web"] * 5
    events, props, expected = [], [], defaultdict(float)
    for i, os_name in enumerate(os_of):
        for k in range(1 + i % 3):
            ev = _event(ids[i], "open", EXPOSED + dt.timedelta(hours=1 + k))
            events.append(ev)
            # A later event's context says another OS: the unit's earliest one counts.
            name = os_name if k == 0 else "Other OS"
            props.append((uuid.uuid4(), ev[0], "context.os", f'{{"name": "{name}", "version": "1"}}', ev[4]))
        expected[os_name if os_name != "Web" else "other"] += 1 + i % 3
    await copy_events(conn, events, props)

    r = await client.get("/v1/experiments/checkout/results/dimensions/os?top=2", headers=actors.analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["dimension"], body["exploratory"], body["top"]) == ("os", True, 2)
    assert [(s["value"], s["units"]) for s in body["slices"]] == [
        ("iOS", 30),
        ("Android", 15),
        ("other", 5),
        ("unknown", 10),
    ]
    for s in body["slices"]:
        (metric,) = s["metrics"]
        assert sum(v["total"] or 0 for v in metric["variants"]) == expected.get(s["value"], 0.0)
        assert all(c["adjusted_p_value"] is None for c in metric["comparisons"])

    r = await client.get("/v1/experiments/checkout/results/dimensions/browser", headers=actors.analyst)
    assert r.status_code == 422
    assert "os" in r.json()["details"][0]["allowed"]
    r = await client.get("/v1/experiments/checkout/results/dimensions/os?top=0", headers=actors.analyst)
    assert r.status_code == 422
    r = await client.get("/v1/experiments/nope/results/dimensions/os", headers=actors.analyst)
    assert r.status_code == 404
    r = await client.get("/v1/experiments/checkout/results/dimensions/trait:plan", headers=actors.analyst)
    assert r.status_code == 200
    assert [s["value"] for s in r.json()["slices"]] == ["unknown"]


async def test_daily_series_is_cumulative(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    r = await client.post(
        "/v1/metrics",
        json={"name": "opens", "kind": "count", "event": "open", "direction": "increase"},
        headers=actors.admin,
    )
    assert r.status_code == 201
    await create(client, actors.admin, primary_metric="opens")
    r = await client.get("/v1/experiments/checkout/results/daily", headers=actors.analyst)
    assert (r.status_code, r.json()["metrics"], r.json()["note"]) == (200, [], "No units are assigned yet.")
    test_id, arms = await variant_ids(conn, "checkout")
    ids = await make_users(conn, 20)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[
            (uuid.uuid4(), test_id, arms["control" if i % 2 else "green"], u, EXPOSED)
            for i, u in enumerate(ids)
        ],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )
    # Each user opens the app 1 hour after exposure and again a day later (user i: also i % 3 more times).
    events = [_event(u, "open", EXPOSED + dt.timedelta(hours=1 + 24 * k)) for u in ids for k in range(2)]
    events += [
        _event(u, "open", EXPOSED + dt.timedelta(hours=2)) for i, u in enumerate(ids) for _ in range(i % 3)
    ]
    await conn.copy_records_to_table(
        "analytics_events",
        records=events,
        columns=["event_id", "user_id", "event_name", "event_category", "timestamp"],
    )
    body = (await client.get("/v1/experiments/checkout/results/daily", headers=actors.analyst)).json()
    (series,) = body["metrics"]
    assert (series["metric"], series["role"]) == ("opens", "primary")
    days = [p["day"] for p in series["days"]]
    assert days[0] == EXPOSED.date().isoformat()
    assert days[-1] == dt.datetime.now(dt.UTC).date().isoformat()
    by_day = {p["day"]: {v["name"]: v for v in p["variants"]} for p in series["days"]}

    def opens_by(end: dt.datetime, arm: str) -> float:
        users = {u for i, u in enumerate(ids) if (i % 2 == 1) == (arm == "control")}
        return sum(1 for e in events if e[1] in users and e[4] < end) / len(users)

    for day, variants in by_day.items():
        end = dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=1), dt.time())
        for arm in ("control", "green"):
            assert variants[arm]["units"] == 10
            assert variants[arm]["mean"] == pytest.approx(opens_by(end, arm), abs=1e-12)
            lo, hi = variants[arm]["ci"]
            assert lo <= variants[arm]["mean"] <= hi
    last = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()["metrics"][0]
    assert [v["mean"] for v in last["variants"]] == [
        by_day[days[-1]][n]["mean"] for n in ("control", "green")
    ]
