"""Sticky, deterministic assignment over the API and through the service with a real pool."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from experiments import repository as repo
from experiments import service
from experiments.assigner import AssignmentBatcher
from experiments.definitions import ExperimentCache
from experiments.errors import ExperimentNotRunning
from experiments.schemas import ExperimentPatch, VariantTraffic
from kernel.auth import AuthUser
from kernel.db import uuid7
from tests.integration.experiments.conftest import (
    Actors,
    Client,
    basic,
    bearer,
    create,
    make_user,
    make_users,
    make_write_key,
)
from tests.support import LiveServer


def _sdk_variant(exp: dict[str, Any], user_id: str) -> str:
    """What the growthbook SDK picks, given the definition the API returns."""
    gb = GrowthBook(attributes={"id": user_id})
    result = gb.run(
        GBExperiment(
            key=exp["name"],
            variations=[v["name"] for v in exp["variants"]],
            weights=[v["weight"] for v in exp["variants"]],
            hashVersion=2,
        )
    )
    assert result.inExperiment
    return str(result.value)


async def _assign(
    client: Client, headers: dict[str, str], user_id: object, name: str = "checkout"
) -> httpx.Response:
    return await client.post(
        f"/v1/experiments/{name}/assignments", json={"user_id": str(user_id)}, headers=headers
    )


async def test_assignment_is_growthbooks_choice_and_sticky(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    exp = await create(
        client,
        actors.admin,
        variants=[
            {"name": "a", "traffic_percentage": 7.78},
            {"name": "b", "traffic_percentage": 12.22},
            {"name": "c", "traffic_percentage": 80},
        ],
    )
    users = await make_users(conn, 300)
    first = {}
    for u in users:
        r = await _assign(client, actors.app, u)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["new"] is True
        assert body["experiment"] == "checkout"
        assert body["variant"] == _sdk_variant(exp, str(u))
        first[u] = body
    rows = await conn.fetch(
        "SELECT a.user_id, v.name, a.phase FROM ab_test_assignments a JOIN ab_test_variants v USING (variant_id)"
    )
    assert {r["user_id"]: r["name"] for r in rows} == {u: b["variant"] for u, b in first.items()}
    assert {r["phase"] for r in rows} == {1}

    # Traffic moves entirely to "a": earlier users keep their variant, new ones follow the new split.
    r = await client.patch(
        "/v1/experiments/checkout",
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
    for u in users[:50]:
        body = (await _assign(client, actors.app, u)).json()
        assert body == {**first[u], "new": False}
    newcomers = await make_users(conn, 30)
    for u in newcomers:
        body = (await _assign(client, actors.app, u)).json()
        assert (body["variant"], body["new"]) == ("a", True)
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments WHERE phase = 2") == 30
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 330


async def test_who_may_assign(
    client: Client, actors: Actors, conn: asyncpg.Connection, settings: Any
) -> None:
    await create(client, actors.admin)
    other = await make_user(conn)
    # A user for itself; an admin and an app for anyone.
    assert (await _assign(client, actors.user, actors.user_id)).status_code == 200
    assert (await _assign(client, actors.admin, other)).status_code == 200
    assert (await _assign(client, actors.app, actors.analyst_id)).status_code == 200
    # Another user's id looks like an unknown user; an analyst is a user here.
    r = await _assign(client, actors.user, other)
    assert (r.status_code, r.json()["code"]) == (404, "user_not_found")
    assert (await _assign(client, actors.analyst, other)).status_code == 404
    r = await client.get(f"/v1/users/{other}/assignments", headers=actors.user)
    assert r.status_code == 404
    # No or bad credentials.
    for headers in (
        {},
        {"Authorization": "Basic !!!"},
        {"Authorization": b"Basic \xe9"},  # not ASCII: base64 refuses it with ValueError
        basic("ca_wk_wrong"),
        {"Authorization": "Bearer x.y.z"},
        {"Authorization": "Token abc"},
    ):
        r = await _assign(client, headers, other)
        assert r.status_code == 401, headers
        assert r.json()["code"] == "unauthorized"
    # A revoked key stops working (the shared cache is per process and short-lived; this one is new).
    key = await make_write_key(conn, "revoked")
    await conn.execute("UPDATE api_sources SET revoked_at = now() WHERE name = 'revoked'")
    assert (await _assign(client, basic(key), other)).status_code == 401
    # A suspended user's own token no longer works.
    await conn.execute("UPDATE users SET status = 'suspended' WHERE user_id = $1", other)
    assert (await _assign(client, bearer(settings, other, "user"), other)).status_code == 401
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 3


async def test_bad_input(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(client, actors.admin)
    cases = [
        ("checkout", {"user_id": "not-a-uuid"}, 422, "validation_error"),
        ("checkout", {"user_id": 42}, 422, "validation_error"),
        ("checkout", {}, 422, "validation_error"),
        ("checkout", {"user_id": str(uuid.uuid4())}, 404, "user_not_found"),
        ("nope", {"user_id": str(actors.user_id)}, 404, "experiment_not_found"),
        ("x" * 5000, {"user_id": str(actors.user_id)}, 404, "experiment_not_found"),
    ]
    for name, body, status, code in cases:
        r = await client.post(f"/v1/experiments/{name}/assignments", json=body, headers=actors.app)
        assert (r.status_code, r.json()["code"]) == (status, code), (name, body, r.text)
    r = await client.post(
        "/v1/experiments/checkout/assignments",
        content=b"{oops",
        headers={**actors.app, "Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()["code"]) == (400, "invalid_json")
    for path_id, status in (("not-a-uuid", 422), (str(uuid.uuid4()), 404), ("%00", 422)):
        r = await client.get(f"/v1/users/{path_id}/assignments", headers=actors.app)
        assert r.status_code == status, (path_id, r.text)
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 0


async def test_only_running_experiments_assign(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    await create(client, actors.admin, "paused")
    await client.patch("/v1/experiments/paused", json={"status": "paused"}, headers=actors.admin)
    await create(client, actors.admin, "done")
    await client.patch("/v1/experiments/done", json={"status": "completed"}, headers=actors.admin)
    await create(client, actors.admin, "ended", end_date=str(today - dt.timedelta(days=1)))
    await create(client, actors.admin, "future", start_date=str(today + dt.timedelta(days=1)))
    await create(client, actors.admin, "last-day", end_date=str(today))
    for name, word in (("paused", "paused"), ("done", "completed"), ("ended", "ended"), ("future", "starts")):
        r = await _assign(client, actors.app, actors.user_id, name)
        assert r.status_code == 409, name
        assert r.json()["code"] == "experiment_not_running"
        assert word in r.json()["message"]
    assert (await _assign(client, actors.app, actors.user_id, "last-day")).status_code == 200
    # A paused experiment keeps earlier assignments but answers 409 until resumed.
    await client.patch("/v1/experiments/last-day", json={"status": "paused"}, headers=actors.admin)
    assert (await _assign(client, actors.app, actors.user_id, "last-day")).status_code == 409
    await client.patch("/v1/experiments/last-day", json={"status": "active"}, headers=actors.admin)
    assert (await _assign(client, actors.app, actors.user_id, "last-day")).json()["new"] is False
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 1


async def test_user_assignments_in_every_running_experiment(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    exps = {name: await create(client, actors.admin, name) for name in ("alpha", "beta", "gamma", "paused")}
    await client.patch("/v1/experiments/paused", json={"status": "paused"}, headers=actors.admin)
    prior = (await _assign(client, actors.app, actors.user_id, "beta")).json()

    r = await client.get(f"/v1/users/{actors.user_id}/assignments", headers=actors.user)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == str(actors.user_id)
    got = {a["experiment"]: a for a in body["assignments"]}
    assert set(got) == {"alpha", "beta", "gamma"}
    assert got["beta"] == {**prior, "new": False}
    assert got["alpha"]["new"] is True
    for name, a in got.items():
        assert a["variant"] == _sdk_variant(exps[name], str(actors.user_id))
    again = (await client.get(f"/v1/users/{actors.user_id}/assignments", headers=actors.app)).json()
    assert all(a["new"] is False for a in again["assignments"])
    assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 3

    # Nothing running: an empty list for a real user, 404 for an unknown one.
    for name in ("alpha", "beta", "gamma"):
        await client.patch(f"/v1/experiments/{name}", json={"status": "paused"}, headers=actors.admin)
    r = await client.get(f"/v1/users/{actors.user_id}/assignments", headers=actors.user)
    assert r.json()["assignments"] == []
    r = await client.get(f"/v1/users/{uuid.uuid4()}/assignments", headers=actors.app)
    assert r.status_code == 404


async def _define(db: Any, admin_id: uuid.UUID, name: str = "race") -> Any:
    from experiments.schemas import ExperimentCreate, VariantIn

    admin = AuthUser(admin_id, "admin", "a@example.test")
    async with db.transaction() as conn:
        return await service.create_experiment(
            conn,
            ExperimentCreate(
                name=name,
                start_date=dt.date(2020, 1, 1),
                variants=[
                    VariantIn("a", decimal.Decimal(34)),
                    VariantIn("b", decimal.Decimal(66)),
                ],
            ),
            admin,
        )


async def test_concurrent_first_calls_make_one_row(db: Any, conn: asyncpg.Connection) -> None:
    admin_id = await make_user(conn, "admin")
    await _define(db, admin_id, "race")
    await _define(db, admin_id, "race2")
    for _ in range(5):
        user_id = await make_user(conn)
        # Separate caches: as if each call came from a different server process.
        results = await asyncio.gather(
            *(
                service.assign(
                    db.pool, ExperimentCache(), AssignmentBatcher.for_pool(db.pool), "race", user_id
                )
                for _ in range(25)
            ),
            *(service.assign_running(db.pool, ExperimentCache(), user_id) for _ in range(5)),
        )
        singles = [r for r in results if isinstance(r, service.Assignment)]
        many = [r for r in results if isinstance(r, list)]
        assert len({a.variant.name for a in singles}) == 1
        assert len({a.assigned_at for a in singles}) == 1
        race_news = [a.new for a in singles] + [a.new for m in many for a in m if a.experiment.name == "race"]
        assert race_news.count(True) == 1
        assert all(len(m) == 2 for m in many)
        rows = await conn.fetch("SELECT test_id FROM ab_test_assignments WHERE user_id = $1", user_id)
        assert len(rows) == 2


async def test_one_batcher_shares_statements_and_answers_each_request(
    db: Any, conn: asyncpg.Connection
) -> None:
    """200 concurrent requests (50 users, each asked 4 times) through one batcher: one row per user,
    the same answer to every request of a user, exactly one of them ``new``, in far fewer statements."""
    admin_id = await make_user(conn, "admin")
    await _define(db, admin_id, "grouped")
    users = [await make_user(conn) for _ in range(50)]
    batcher = AssignmentBatcher.for_pool(db.pool)
    statements = 0
    run_batch = batcher._run_batch

    async def counting(wanted: Any) -> Any:
        nonlocal statements
        statements += 1
        return await run_batch(wanted)

    batcher._run_batch = counting
    cache = ExperimentCache()
    got = await asyncio.gather(*(service.assign(db.pool, cache, batcher, "grouped", u) for u in users * 4))
    assert statements < 50
    by_user: dict[uuid.UUID, list[service.Assignment]] = {}
    for u, a in zip(users * 4, got, strict=True):
        by_user.setdefault(u, []).append(a)
    rows = {
        r["user_id"]: r["name"]
        for r in await conn.fetch(
            """SELECT a.user_id, v.name FROM ab_test_assignments a
               JOIN ab_test_variants v USING (variant_id) WHERE a.user_id = ANY($1::uuid[])""",
            users,
        )
    }
    assert set(rows) == set(users)
    for u, answers in by_user.items():
        assert {a.variant.name for a in answers} == {rows[u]}
        assert len({a.assigned_at for a in answers}) == 1
        assert [a.new for a in answers].count(True) == 1


async def test_a_failing_row_fails_alone(
    db: Any, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A row the database refuses (here a variant that does not exist) fails its own request only."""
    admin_id = await make_user(conn, "admin")
    exp = await _define(db, admin_id, "isolated")
    good_variant = exp.variants[0].variant_id
    users = [await make_user(conn) for _ in range(8)]
    batcher = AssignmentBatcher.for_pool(db.pool, max_inflight=1)
    requests = [(u, good_variant) for u in users]
    requests.insert(4, (await make_user(conn), uuid.uuid4()))
    got = await asyncio.gather(
        *(batcher.submit(exp.test_id, u, v, exp.phase, uuid7()) for u, v in requests), return_exceptions=True
    )
    assert "assignment batch of 9 failed" in caplog.text
    assert isinstance(got[4], asyncpg.ForeignKeyViolationError)
    good = [g for i, g in enumerate(got) if i != 4]
    assert all(not isinstance(g, BaseException) and g["new_variant"] == good_variant for g in good)
    assert await conn.fetchval(
        "SELECT count(*) FROM ab_test_assignments WHERE test_id = $1", exp.test_id
    ) == len(users)


async def test_stale_cache_in_another_process(db: Any, conn: asyncpg.Connection) -> None:
    """A definition cached before another process paused it or changed its traffic is not believed."""
    admin_id = await make_user(conn, "admin")
    admin = AuthUser(admin_id, "admin", "a@example.test")
    await _define(db, admin_id, "stale")
    stale = ExperimentCache(ttl=3600)
    u1, u2, u3 = await make_user(conn), await make_user(conn), await make_user(conn)
    assert (await service.assign(db.pool, stale, AssignmentBatcher.for_pool(db.pool), "stale", u1)).new

    async with db.transaction() as c:
        await service.update_experiment(c, "stale", ExperimentPatch(status="paused"), admin)
    try:
        await service.assign(db.pool, stale, AssignmentBatcher.for_pool(db.pool), "stale", u2)
        raise AssertionError("a paused experiment assigned")
    except ExperimentNotRunning:
        pass

    async with db.transaction() as c:
        await service.update_experiment(
            c,
            "stale",
            ExperimentPatch(
                status="active",
                variants=[
                    VariantTraffic("a", decimal.Decimal(0)),
                    VariantTraffic("b", decimal.Decimal(100)),
                ],
            ),
            admin,
        )
    stale2 = ExperimentCache(ttl=3600)
    # Warm a second stale cache with phase 2, then move to phase 3 behind its back.
    await stale2.get("stale", lambda n: repo.fetch_experiment(db.pool, n))
    async with db.transaction() as c:
        await service.update_experiment(
            c,
            "stale",
            ExperimentPatch(
                variants=[
                    VariantTraffic("a", decimal.Decimal(100)),
                    VariantTraffic("b", decimal.Decimal(0)),
                ]
            ),
            admin,
        )
    got = await service.assign(db.pool, stale2, AssignmentBatcher.for_pool(db.pool), "stale", u3)
    assert (got.variant.name, got.new, got.experiment.phase) == ("a", True, 3)
    assert await conn.fetchval("SELECT phase FROM ab_test_assignments WHERE user_id = $1", u3) == 3


_LIVE_SECRET = "experiments-live-secret-0123456789abcdef0123456789"


def test_concurrent_http_calls_on_a_real_server(clean_db: str) -> None:
    """The same race over HTTP against ``corp-astro serve``: one row, one answer."""

    async def scenario(server: LiveServer) -> None:
        conn = await asyncpg.connect(clean_db)
        try:
            admin_id = await make_user(conn, "admin")
            key = await make_write_key(conn)
            users = [await make_user(conn) for _ in range(3)]
        finally:
            await conn.close()
        from kernel.auth import create_access_token
        from tests.conftest import make_settings

        token, _ = create_access_token(
            make_settings(clean_db, server_dir, jwt_secret_override=_LIVE_SECRET),
            admin_id,
            "admin",
        )
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            r = await http.post(
                "/v1/experiments",
                json={
                    "name": "live",
                    "start_date": "2020-01-01",
                    "variants": [
                        {"name": "a", "traffic_percentage": 50},
                        {"name": "b", "traffic_percentage": 50},
                    ],
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
            for u in users:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            "/v1/experiments/live/assignments", json={"user_id": str(u)}, headers=basic(key)
                        )
                        for _ in range(20)
                    )
                )
                assert {a.status_code for a in answers} == {200}
                bodies = [a.json() for a in answers]
                assert len({(b["variant"], b["assigned_at"]) for b in bodies}) == 1
                assert sum(b["new"] for b in bodies) == 1
        conn = await asyncpg.connect(clean_db)
        try:
            assert await conn.fetchval("SELECT count(*) FROM ab_test_assignments") == 3
        finally:
            await conn.close()

    import tempfile
    from pathlib import Path

    server_dir = Path(tempfile.mkdtemp())
    with LiveServer(clean_db, env={"CORP_ASTRO_JWT_SECRET": _LIVE_SECRET}) as server:
        asyncio.run(scenario(server))
