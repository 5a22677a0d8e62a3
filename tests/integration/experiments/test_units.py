"""Units (docs/experiment-units.md): anonymous and external assignment over HTTP, the exactly-one-id rule,
GrowthBook reproduction, and identity stitching by identify/alias events that ingest stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

import asyncpg
import httpx
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from experiments import service
from experiments.assigner import AssignmentBatcher
from experiments.definitions import ExperimentCache
from experiments.jobs import convert_goal_events
from experiments.schemas import UserRef
from kernel.auth import Source
from tests.integration.experiments.conftest import Actors, Client, bearer, create, make_user

THREE = [
    {"name": "a", "traffic_percentage": 7.78},
    {"name": "b", "traffic_percentage": 12.22},
    {"name": "c", "traffic_percentage": 80},
]


def sdk_variant(exp: dict[str, Any], attribute: str, value: str) -> str:
    """What the growthbook SDK picks with ``hashAttribute`` = ``attribute``."""
    result = GrowthBook(attributes={attribute: value}).run(
        GBExperiment(
            key=exp["name"],
            variations=[v["name"] for v in exp["variants"]],
            weights=[v["weight"] for v in exp["variants"]],
            hashVersion=2,
            hashAttribute=attribute,
        )
    )
    assert result.inExperiment
    return str(result.value)


async def post(
    client: Client, headers: dict[str, str], body: dict[str, Any], name: str, what: str
) -> httpx.Response:
    return await client.post(f"/v1/experiments/{name}/{what}", json=body, headers=headers)


async def assign(
    client: Client, headers: dict[str, str], name: str = "checkout", **ids: Any
) -> httpx.Response:
    return await post(client, headers, ids, name, "assignments")


async def ingest(client: Client, app: dict[str, str], *messages: dict[str, Any]) -> None:
    """Messages through the Segment-compatible collector (stored when it answers 200)."""
    r = await client.post("/v1/batch", json={"batch": list(messages)}, headers=app)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(messages), r.text


async def run_job(conn: asyncpg.Connection) -> int:
    async with conn.transaction():
        return await convert_goal_events(conn)


async def unit_rows(conn: asyncpg.Connection) -> dict[str, tuple[str, str, bool]]:
    rows = await conn.fetch(
        """SELECT a.unit_id, a.unit_type, v.name, a.converted FROM experiment_unit_assignments a
           JOIN ab_test_variants v USING (variant_id)"""
    )
    return {r["unit_id"]: (r["unit_type"], r["name"], r["converted"]) for r in rows}


async def test_anonymous_and_external_assignment_over_http(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    anon = await create(client, actors.admin, "paywall", unit="anonymous", variants=THREE)
    ext = await create(client, actors.admin, "onboarding", unit="external", variants=THREE)
    assert (anon["unit"], ext["unit"]) == ("anonymous", "external")
    got = (await client.get("/v1/experiments/paywall", headers=actors.admin)).json()
    assert got["unit"] == "anonymous"

    anonymous_ids = [str(uuid.uuid4()) for _ in range(150)] + ["ajs-next-3f9a", "visiteur-é", "用户-1"]
    external_ids = [f"user_{i:04d}" for i in range(1, 151)] + ["019mr8mf4r"]
    first: dict[str, dict[str, Any]] = {}
    for field, exp, ids in (("anonymous_id", anon, anonymous_ids), ("external_user_id", ext, external_ids)):
        attribute = "anonymousId" if field == "anonymous_id" else "userId"
        for unit_id in ids:
            r = await assign(client, actors.app, exp["name"], **{field: unit_id})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["new"] is True
            assert body["experiment"] == exp["name"]
            assert body["variant"] == sdk_variant(exp, attribute, unit_id)
            first[unit_id] = body
    rows = await unit_rows(conn)
    assert set(rows) == set(anonymous_ids) | set(external_ids)
    for unit_id in anonymous_ids:
        assert rows[unit_id] == ("anonymous", first[unit_id]["variant"], False)
    for unit_id in external_ids:
        assert rows[unit_id] == ("external", first[unit_id]["variant"], False)
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 0

    # Sticky: the same answer, not new; an admin's token may name Segment ids too.
    for unit_id in anonymous_ids[:20]:
        body = (await assign(client, actors.admin, "paywall", anonymous_id=unit_id)).json()
        assert body == {**first[unit_id], "new": False}
    # One experiment's ids are not another's: the same string is a new unit in the other experiment.
    r = await assign(client, actors.app, "onboarding", external_user_id=anonymous_ids[0])
    assert (r.status_code, r.json()["new"]) == (200, True)
    # Conversions by the unit's own id: the first one counts, a repeat answers it.
    for name, field, unit_id in (
        ("paywall", "anonymous_id", anonymous_ids[1]),
        ("onboarding", "external_user_id", "user_0001"),
    ):
        r1 = await post(client, actors.app, {field: unit_id}, name, "conversions")
        r2 = await post(client, actors.app, {field: unit_id}, name, "conversions")
        assert (r1.status_code, r1.json()["new"], r1.json()["variant"]) == (
            200,
            True,
            first[unit_id]["variant"],
        )
        assert r2.json() == {**r1.json(), "new": False}
    assert {u for u, r in (await unit_rows(conn)).items() if r[2]} == {anonymous_ids[1], "user_0001"}
    # Results count the units.
    res = (await client.get("/v1/experiments/paywall/results", headers=actors.analyst)).json()
    assert sum(v["users"] for v in res["variants"]) == len(anonymous_ids)
    assert sum(v["conversions"] for v in res["variants"]) == 1


async def test_exactly_one_id_and_the_experiments_unit(
    client: Client, actors: Actors, conn: asyncpg.Connection, settings: Any
) -> None:
    await create(client, actors.admin, "users-exp")
    await create(client, actors.admin, "anon-exp", unit="anonymous")
    await create(client, actors.admin, "ext-exp", unit="external")
    uid = str(actors.user_id)
    bad_bodies: list[dict[str, Any]] = [
        {},
        {"user_id": None},
        {"user_id": uid, "anonymous_id": "a1"},
        {"anonymous_id": "a1", "external_user_id": "x1"},
        {"user_id": uid, "anonymous_id": "a1", "external_user_id": "x1"},
        {"anonymous_id": ""},
        {"anonymous_id": "x" * 256},
        {"anonymous_id": 5},
        {"external_user_id": ["x"]},
        {"anonymous_id": "a\u0000b"},
    ]
    for what in ("assignments", "conversions"):
        for name in ("users-exp", "anon-exp", "ext-exp"):
            for body in bad_bodies:
                r = await post(client, actors.app, body, name, what)
                assert r.status_code == 422, (what, name, body, r.text)
                got = r.json()
                assert got["code"] == "validation_error", got
                assert got["details"], got
                assert all({"field", "message"} <= set(d) for d in got["details"]), got
    # The id must be the experiment's unit.
    mismatches = [
        ("users-exp", {"anonymous_id": "a1"}, "body.anonymous_id"),
        ("users-exp", {"external_user_id": "x1"}, "body.external_user_id"),
        ("ext-exp", {"anonymous_id": "a1"}, "body.anonymous_id"),
        ("ext-exp", {"user_id": uid}, "body.user_id"),
    ]
    for what in ("assignments", "conversions"):
        for name, body, field in mismatches:
            r = await post(client, actors.app, body, name, what)
            assert r.status_code == 422, (name, body, r.text)
            assert r.json()["code"] == "validation_error"
            assert [d["field"] for d in r.json()["details"]] == [field]
    # An anonymous experiment takes a user or Segment userId only when identify/alias linked it.
    for body in ({"user_id": uid}, {"external_user_id": "x1"}):
        r = await assign(client, actors.app, "anon-exp", **body)
        assert (r.status_code, r.json()["code"]) == (409, "unit_not_linked"), r.text
    # Segment ids are not accounts: a user's own token cannot name them; an unknown id converts nothing.
    r = await assign(client, actors.user, "anon-exp", anonymous_id="a1")
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    r = await post(client, actors.app, {"anonymous_id": "never"}, "anon-exp", "conversions")
    assert (r.status_code, r.json()["code"]) == (409, "not_assigned")
    assert await conn.fetchval("SELECT count(*) FROM experiment_unit_assignments") == 0
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 0
    # The user unit is unchanged: {user_id} still assigns a registered account.
    assert (await assign(client, actors.app, "users-exp", user_id=uid)).status_code == 200
    assert (await assign(client, bearer(settings, actors.user_id, "user"), "users-exp", user_id=uid)).json()[
        "new"
    ] is False


async def test_growthbook_reproduces_10000_anonymous_assignments(
    db: Any, client: Client, actors: Actors
) -> None:
    """10,000 anonymous ids through the service's hot path (group commit, a real pool) and what the
    growthbook SDK picks with ``hashAttribute="anonymousId"``: 0 mismatches."""
    exp = await create(client, actors.admin, "anon-10k", unit="anonymous", variants=THREE)
    rng = random.Random(15)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-é用"
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(7000)]
    ids += [f"ajs-next-{rng.getrandbits(64):x}" for _ in range(2000)]
    ids += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(1000)]
    ids = list(dict.fromkeys(ids))
    assert len(ids) >= 9990
    while len(ids) < 10_000:
        ids.append(f"extra-{len(ids)}")
    cache = ExperimentCache()
    batchers = (AssignmentBatcher.for_pool(db.pool), AssignmentBatcher.for_units(db.pool))
    app = Source(uuid.uuid4(), "app")
    got = await asyncio.gather(
        *(service.assign_for(db.pool, cache, batchers, app, "anon-10k", UserRef(anonymous_id=i)) for i in ids)
    )
    async with db.pool.acquire() as c:
        stored = {
            r["unit_id"]: r["name"]
            for r in await c.fetch(
                """SELECT a.unit_id, v.name FROM experiment_unit_assignments a
                   JOIN ab_test_variants v USING (variant_id)"""
            )
        }
    assert len(stored) == 10_000
    mismatches = [
        i for i, out in zip(ids, got, strict=True) if out.variant != sdk_variant(exp, "anonymousId", i)
    ]
    assert mismatches == []
    assert all(stored[i] == out.variant for i, out in zip(ids, got, strict=True))
    split = {v: sum(1 for x in stored.values() if x == v) for v in ("a", "b", "c")}
    assert 600 < split["a"] < 950, split
    assert 1050 < split["b"] < 1400, split


async def _different_variants(exp: dict[str, Any], user_key: str) -> str:
    """An anonymous id whose variant differs from the one ``user_key`` would hash to."""
    own = sdk_variant(exp, "id", user_key)
    for i in range(1000):
        anon = f"anon-{i}-{uuid.uuid4().hex[:6]}"
        if sdk_variant(exp, "id", anon) != own:
            return anon
    raise AssertionError("no anonymous id with another variant")


async def test_identify_then_assign_by_user_keeps_the_variant(
    client: Client, actors: Actors, conn: asyncpg.Connection, settings: Any
) -> None:
    exp = await create(client, actors.admin, "paywall", unit="anonymous")
    uid = await make_user(conn)
    anon = await _different_variants(exp, str(uid))
    before = (await assign(client, actors.app, "paywall", anonymous_id=anon)).json()
    # Not linked yet.
    r = await assign(client, actors.app, "paywall", user_id=str(uid))
    assert r.status_code == 409
    await ingest(
        client, actors.app, {"type": "identify", "userId": str(uid), "anonymousId": anon, "traits": {}}
    )
    await run_job(conn)
    link = await conn.fetchrow("SELECT * FROM experiment_identity_links")
    assert (link["anonymous_id"], link["external_user_id"], link["user_id"], link["source"]) == (
        anon,
        str(uid),
        uid,
        "identify",
    )
    same = {**before, "new": False}
    # By account (app key, the user's own token, an admin), by its Segment userId, and by the anonymous id.
    for headers in (actors.app, bearer(settings, uid, "user"), actors.admin):
        assert (await assign(client, headers, "paywall", user_id=str(uid))).json() == same
    assert (await assign(client, actors.app, "paywall", external_user_id=str(uid))).json() == same
    assert (await assign(client, actors.app, "paywall", anonymous_id=anon)).json() == same
    # Another user's token cannot read it; and nothing new was stored.
    r = await assign(client, actors.user, "paywall", user_id=str(uid))
    assert r.status_code == 404
    assert await conn.fetchval("SELECT count(*) FROM experiment_unit_assignments") == 1
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 0
    # A conversion by the account converts the visitor's assignment.
    r = await post(client, actors.app, {"user_id": str(uid)}, "paywall", "conversions")
    assert (r.status_code, r.json()["variant"], r.json()["new"]) == (200, before["variant"], True)
    assert (await unit_rows(conn))[anon][2] is True
    # Erasure removes the account's links.
    from experiments.hooks import on_user_erased

    async with conn.transaction():
        counts = await on_user_erased(conn, uid)
    assert counts["experiment_identity_links"] == 1


async def test_alias_links_the_previous_id(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    exp = await create(client, actors.admin, "paywall", unit="anonymous")
    anon = await _different_variants(exp, "user_0001")
    before = (await assign(client, actors.app, "paywall", anonymous_id=anon)).json()
    await ingest(client, actors.app, {"type": "alias", "previousId": anon, "userId": "user_0001"})
    await run_job(conn)
    assert await conn.fetchval("SELECT source FROM experiment_identity_links") == "alias"
    r = await assign(client, actors.app, "paywall", external_user_id="user_0001")
    assert r.json() == {**before, "new": False}
    # An unregistered userId is no account: {user_id} needs a UUID.
    r = await assign(client, actors.app, "paywall", user_id="user_0001")
    assert r.status_code == 422


async def test_events_under_either_id_count_in_conversions(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await create(client, actors.admin, "paywall", unit="anonymous", goal_event="purchase")
    await create(client, actors.admin, "onboarding", unit="external", goal_event="purchase")
    for a in ("A1", "A2", "A3", "A4"):
        assert (await assign(client, actors.app, "paywall", anonymous_id=a)).status_code == 200
    for x in ("X5", "X6"):
        assert (await assign(client, actors.app, "onboarding", external_user_id=x)).status_code == 200
    # A1 buys server-side as X1 (userId only) before the identify reaches the job; A2 buys as itself;
    # A3 buys under an unlinked userId; A4 does nothing. X5 bought anonymously (A5) before signing in.
    await ingest(
        client,
        actors.app,
        {"type": "track", "event": "purchase", "userId": "X1"},
        {"type": "track", "event": "purchase", "anonymousId": "A2"},
        {"type": "track", "event": "purchase", "userId": "X3"},
        {"type": "track", "event": "purchase", "anonymousId": "A5"},
        {"type": "track", "event": "view", "anonymousId": "A4"},
    )
    await run_job(conn)
    rows = await unit_rows(conn)
    assert {u for u, r in rows.items() if r[2]} == {"A2"}
    # The links arrive later: events ingested before them count now (the job's relink pass).
    await ingest(
        client,
        actors.app,
        {"type": "identify", "userId": "X1", "anonymousId": "A1"},
        {"type": "identify", "userId": "X5", "anonymousId": "A5"},
    )
    assert await run_job(conn) == 2
    rows = await unit_rows(conn)
    assert {u for u, r in rows.items() if r[2]} == {"A1", "A2", "X5"}
    # Events after the link, under the userId alone, count for the visitor too (here: A4 via X4).
    await ingest(client, actors.app, {"type": "alias", "previousId": "A4", "userId": "X4"})
    await run_job(conn)
    await ingest(client, actors.app, {"type": "track", "event": "purchase", "userId": "X4"})
    assert await run_job(conn) == 1
    rows = await unit_rows(conn)
    assert {u for u, r in rows.items() if r[2]} == {"A1", "A2", "A4", "X5"}
    res = (await client.get("/v1/experiments/paywall/results", headers=actors.analyst)).json()
    assert (sum(v["users"] for v in res["variants"]), sum(v["conversions"] for v in res["variants"])) == (
        4,
        3,
    )
    assert await run_job(conn) == 0

    # The relink pass itself: a purchase ingested long before the last run (outside its overlap, so the
    # incremental read never sees it again) counts once an identify links its userId.
    assert (await assign(client, actors.app, "paywall", anonymous_id="A7")).status_code == 200
    await conn.execute(
        """INSERT INTO analytics_events (event_id, event_name, event_category, "timestamp", created_at,
                                         external_user_id)
           VALUES (gen_random_uuid(), 'purchase', 'track', LOCALTIMESTAMP, LOCALTIMESTAMP - interval '1 hour', 'X7')"""
    )
    assert await run_job(conn) == 0
    await ingest(client, actors.app, {"type": "identify", "userId": "X7", "anonymousId": "A7"})
    assert await run_job(conn) == 1
    assert (await unit_rows(conn))["A7"][2] is True


async def test_anonymous_assignments_stay_through_traffic_changes(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await create(client, actors.admin, "paywall", unit="anonymous", variants=THREE)
    first = {}
    for i in range(60):
        body = (await assign(client, actors.app, "paywall", anonymous_id=f"v{i}")).json()
        first[f"v{i}"] = body
    r = await client.patch(
        "/v1/experiments/paywall",
        json={
            "variants": [
                {"name": "a", "traffic_percentage": 100},
                {"name": "b", "traffic_percentage": 0},
                {"name": "c", "traffic_percentage": 0},
            ]
        },
        headers=actors.admin,
    )
    assert r.status_code == 200
    for unit_id, body in first.items():
        assert (await assign(client, actors.app, "paywall", anonymous_id=unit_id)).json() == {
            **body,
            "new": False,
        }
    for i in range(20):
        body = (await assign(client, actors.app, "paywall", anonymous_id=f"new{i}")).json()
        assert (body["variant"], body["new"]) == ("a", True)
    phases = await conn.fetch(
        "SELECT phase, count(*) FROM experiment_unit_assignments GROUP BY phase ORDER BY 1"
    )
    assert [tuple(r) for r in phases] == [(1, 60), (2, 20)]
    # Paused: 409 for every unit, the stored assignment kept.
    await client.patch("/v1/experiments/paywall", json={"status": "paused"}, headers=actors.admin)
    r = await assign(client, actors.app, "paywall", anonymous_id="v1")
    assert (r.status_code, r.json()["code"]) == (409, "experiment_not_running")


async def test_the_link_job_is_incremental_and_idempotent(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await ingest(
        client,
        actors.app,
        *[{"type": "identify", "userId": f"u{i}", "anonymousId": f"a{i}"} for i in range(30)],
        {"type": "alias", "previousId": "a0", "userId": "u0-new", "anonymousId": "a0"},
        {"type": "track", "event": "purchase", "userId": "u99", "anonymousId": "a99"},  # not a link
        {"type": "identify", "userId": "solo"},  # no anonymous id: nothing to link
    )
    await run_job(conn)
    query = "SELECT anonymous_id, external_user_id, source, linked_at FROM experiment_identity_links ORDER BY 1, 2"
    first = [tuple(r) for r in await conn.fetch(query)]
    assert len(first) == 31
    assert ("a0", "u0-new") in {(r[0], r[1]) for r in first}
    through = await conn.fetchval(
        "SELECT ingested_through FROM experiment_watermarks WHERE job = 'identity_links'"
    )
    await run_job(conn)
    assert [tuple(r) for r in await conn.fetch(query)] == first
    assert await conn.fetchval("SELECT ingested_through FROM experiment_watermarks") > through
    # Incremental: an identify stored as if ingested long before the watermark is not read again...
    await conn.execute(
        """INSERT INTO analytics_events (event_id, event_name, event_category, "timestamp", created_at,
                                         external_user_id, anonymous_id)
           VALUES (gen_random_uuid(), 'identify', 'identify', LOCALTIMESTAMP, $1, 'late-u', 'late-a')""",
        through - dt.timedelta(hours=1),
    )
    await run_job(conn)
    assert await conn.fetchval("SELECT count(*) FROM experiment_identity_links") == 31
    # ...and a pair seen again with an earlier event time keeps the earliest.
    early = first[5][3] - dt.timedelta(days=1)
    await ingest(
        client,
        actors.app,
        {
            "type": "identify",
            "userId": first[5][1],
            "anonymousId": first[5][0],
            "timestamp": early.isoformat() + "Z",
        },
    )
    await run_job(conn)
    assert (
        await conn.fetchval(
            "SELECT linked_at FROM experiment_identity_links WHERE anonymous_id = $1 AND external_user_id = $2",
            first[5][0],
            first[5][1],
        )
        == early
    )


async def test_the_sql_fragments_for_every_unit(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    """``unit_assignments_sql`` and ``unit_event_join_sql``: which assignment each event counts for."""
    from experiments.unit_repository import unit_assignments_sql, unit_event_join_sql

    await create(client, actors.admin, "u", goal_event="e")
    await create(client, actors.admin, "an", unit="anonymous")
    await create(client, actors.admin, "ex", unit="external")
    uid = await make_user(conn)
    await assign(client, actors.app, "u", user_id=str(uid))
    for a in ("A1", "A2"):
        await assign(client, actors.app, "an", anonymous_id=a)
    await assign(client, actors.app, "ex", external_user_id="X1")
    await ingest(
        client,
        actors.app,
        {"type": "identify", "userId": "X1", "anonymousId": "A1"},
        {"type": "identify", "userId": "X1", "anonymousId": "A2"},  # X1 is linked to both: A1 came first
        {"type": "track", "event": "e", "userId": str(uid), "messageId": "m-user"},
        {"type": "track", "event": "e", "anonymousId": "A1", "messageId": "m-a1"},
        {"type": "track", "event": "e", "anonymousId": "A2", "userId": "X1", "messageId": "m-a2-x1"},
        {"type": "track", "event": "e", "userId": "X1", "messageId": "m-x1"},
        {"type": "track", "event": "e", "anonymousId": "A2", "messageId": "m-a2"},
        {"type": "track", "event": "e", "anonymousId": "Z", "messageId": "m-z"},
    )
    await run_job(conn)
    expected = {
        "u": {"m-user": str(uid)},
        "an": {"m-a1": "A1", "m-a2-x1": "A2", "m-x1": "A1", "m-a2": "A2"},
        "ex": {"m-a2-x1": "X1", "m-x1": "X1", "m-a1": "X1", "m-a2": "X1"},
    }
    for name, unit in (("u", "user"), ("an", "anonymous"), ("ex", "external")):
        test_id = await conn.fetchval("SELECT test_id FROM ab_tests WHERE name = $1", name)
        units = await conn.fetch(unit_assignments_sql(unit), test_id)
        assert len(units) == (2 if unit == "anonymous" else 1)
        # Both plans (hash joins for many events, index probes for a few) give the same rows.
        for probe in (False, True):
            join = unit_event_join_sql(unit, probe=probe)
            rows = await conn.fetch(
                f"SELECT e.message_id, ua.* FROM analytics_events e {join} WHERE e.event_name = 'e'", test_id
            )
            assert {r["message_id"]: r["unit_id"] for r in rows} == expected[name], (name, probe)
            by_unit = {u["unit_id"]: dict(u) for u in units}
            assert all({k: r[k] for k in by_unit[r["unit_id"]]} == by_unit[r["unit_id"]] for r in rows)


async def test_concurrent_first_calls_and_a_failing_row(db: Any, client: Client, actors: Actors) -> None:
    """As for users: concurrent first calls for one anonymous id (as if from several processes) make one
    row and one answer; a row the database refuses fails its own request only."""
    exp = await create(client, actors.admin, "race", unit="anonymous")
    app = Source(uuid.uuid4(), "app")
    for n in range(3):
        got = await asyncio.gather(
            *(
                service.assign_for(
                    db.pool,
                    ExperimentCache(),
                    (AssignmentBatcher.for_pool(db.pool), AssignmentBatcher.for_units(db.pool)),
                    app,
                    "race",
                    UserRef(anonymous_id=f"same-{n}"),
                )
                for _ in range(20)
            )
        )
        assert len({(a.variant, a.assigned_at) for a in got}) == 1
        assert [a.new for a in got].count(True) == 1
    batcher = AssignmentBatcher.for_units(db.pool, max_inflight=1)
    test_id = uuid.UUID(exp["test_id"])
    good = uuid.UUID(exp["variants"][0]["variant_id"])
    wanted = [(f"ok-{i}", good) for i in range(8)]
    wanted.insert(3, ("bad", uuid.uuid4()))  # no such variant: the foreign key refuses the row
    rows = await asyncio.gather(
        *(batcher.submit(test_id, u, v, 1, uuid.uuid4()) for u, v in wanted), return_exceptions=True
    )
    assert isinstance(rows[3], asyncpg.ForeignKeyViolationError)
    assert all(
        not isinstance(r, BaseException) and r["new_variant"] == good for i, r in enumerate(rows) if i != 3
    )
    async with db.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM experiment_unit_assignments") == 3 + 8
