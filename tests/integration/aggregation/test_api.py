"""The query and export API: analysts only, bounded ranges (422), keyset pagination, background exports."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import uuid
from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from litestar.testing import AsyncTestClient

from aggregation.jobs import aggregate_range
from kernel.db import Database
from kernel.settings import Settings
from tests.integration.aggregation.conftest import (
    Event,
    auth_header,
    create_user,
    create_users,
    insert_events,
)

D = dt.date(2026, 3, 10)
Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.fixture
async def analyst(conn: asyncpg.Connection, settings: Settings) -> dict[str, str]:
    return auth_header(settings, await create_user(conn, "analyst"), "analyst")


@pytest.fixture
async def plain_user(conn: asyncpg.Connection, settings: Settings) -> dict[str, str]:
    return auth_header(settings, await create_user(conn, "user"), "user")


@pytest.fixture
async def rolled_up(db: Database, conn: asyncpg.Connection) -> None:
    users = await create_users(conn, 3)
    events = [
        Event(
            dt.datetime.combine(D + dt.timedelta(days=i % 2), dt.time(i % 5, 10)),
            event_name=f"e{i % 3}",
            event_category="app",
            user_id=users[i % 3],
            device_id=f"d{i % 4}",
            session_id=f"s{i % 6}",
            properties={"k": str(i)},
        )
        for i in range(30)
    ]
    await insert_events(conn, events)
    await aggregate_range(db, D, D + dt.timedelta(days=1), jobs=("daily",))


async def test_events_by_day_and_hour(client: Client, analyst: dict[str, str], rolled_up: None) -> None:
    r = await client.get("/v1/analytics/events", params={"from": str(D), "to": str(D)}, headers=analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None
    assert [i["period"] for i in body["items"]] == [str(D)] * 3
    assert sum(i["events"] for i in body["items"]) == 15
    assert set(body["items"][0]) == {
        "period",
        "event_name",
        "event_category",
        "events",
        "users",
        "devices",
        "sessions",
    }

    r = await client.get(
        "/v1/analytics/events",
        params={
            "granularity": "hour",
            "from": str(D),
            "to": str(D + dt.timedelta(days=1)),
            "event_name": "e1",
        },
        headers=analyst,
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert {i["event_name"] for i in items} == {"e1"}
    assert items[0]["period"] == f"{D}T00:00:00Z"
    assert sum(i["events"] for i in items) == 10


async def test_keyset_pagination_walks_every_row_once(
    client: Client, analyst: dict[str, str], rolled_up: None
) -> None:
    params = {"granularity": "hour", "from": str(D), "to": str(D + dt.timedelta(days=1))}
    full = (
        await client.get("/v1/analytics/events", params={**params, "limit": 200}, headers=analyst)
    ).json()["items"]
    seen: list[dict[str, object]] = []
    cursor = None
    for _ in range(100):
        page = await client.get(
            "/v1/analytics/events",
            params={**params, "limit": 4, **({"cursor": cursor} if cursor else {})},
            headers=analyst,
        )
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == full
    assert len(full) > 8

    r = await client.get(
        "/v1/analytics/events", params={**params, "cursor": "bm90LWEtY3Vyc29y"}, headers=analyst
    )
    # A query value that does not fit: 422 validation_error naming the field (docs/errors.md; it was 400).
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert [d["field"] for d in r.json()["details"]] == ["query.cursor"]


async def test_active_users(client: Client, analyst: dict[str, str], rolled_up: None) -> None:
    r = await client.get(
        "/v1/analytics/active-users",
        params={"from": str(D), "to": str(D + dt.timedelta(days=1))},
        headers=analyst,
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {"day": str(D), "dau": 3, "wau": 3, "mau": 3},
        {"day": str(D + dt.timedelta(days=1)), "dau": 3, "wau": 3, "mau": 3},
    ]
    page = await client.get(
        "/v1/analytics/active-users",
        params={"from": str(D), "to": str(D + dt.timedelta(days=1)), "limit": 1},
        headers=analyst,
    )
    nxt = await client.get(
        "/v1/analytics/active-users",
        params={
            "from": str(D),
            "to": str(D + dt.timedelta(days=1)),
            "limit": 1,
            "cursor": page.json()["next_cursor"],
        },
        headers=analyst,
    )
    assert [i["day"] for i in page.json()["items"] + nxt.json()["items"]] == [
        str(D),
        str(D + dt.timedelta(days=1)),
    ]
    assert nxt.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/analytics/events", {"from": "2026-03-10", "to": "2026-03-01"}),
        ("/v1/analytics/events", {"from": "2025-01-01", "to": "2026-03-01"}),
        ("/v1/analytics/events", {"granularity": "hour", "from": "2026-01-01", "to": "2026-03-01"}),
        ("/v1/analytics/events", {"granularity": "minute", "from": "2026-03-01", "to": "2026-03-01"}),
        ("/v1/analytics/events", {"from": "yesterday", "to": "2026-03-01"}),
        ("/v1/analytics/events", {"to": "2026-03-01"}),
        ("/v1/analytics/active-users", {"from": "2026-03-10", "to": "2026-03-09"}),
        ("/v1/analytics/active-users", {"from": "2020-01-01", "to": "2026-03-09"}),
        ("/v1/analytics/active-users", {"from": "2026-02-30", "to": "2026-03-09"}),
        # Real dates whose day arithmetic would leave Python's date range.
        ("/v1/analytics/events", {"from": "9999-12-31", "to": "9999-12-31"}),
        ("/v1/analytics/events", {"granularity": "hour", "from": "9999-12-31", "to": "9999-12-31"}),
        ("/v1/analytics/active-users", {"from": "0001-01-01", "to": "0001-01-02"}),
    ],
)
async def test_bad_ranges_are_422(
    client: Client, analyst: dict[str, str], path: str, params: dict[str, str]
) -> None:
    r = await client.get(path, params=params, headers=analyst)
    assert r.status_code == 422, r.text
    # Every validation error is validation_error (it was invalid_range), naming the fields.
    assert r.json()["code"] == "validation_error"
    assert r.json()["message"]
    fields = {d["field"] for d in r.json()["details"]}
    assert fields, r.text
    assert fields <= {"query.from", "query.to", "query.granularity"}, fields


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/analytics/events?from=2026-03-10&to=2026-03-10"),
        ("GET", "/v1/analytics/active-users?from=2026-03-10&to=2026-03-10"),
        ("POST", "/v1/exports"),
        ("GET", f"/v1/exports/{uuid.uuid4()}"),
        ("GET", f"/v1/exports/{uuid.uuid4()}/download"),
    ],
)
async def test_unauthorised_callers_are_refused(
    client: Client, plain_user: dict[str, str], method: str, path: str
) -> None:
    body = {"from": str(D), "to": str(D)} if method == "POST" else None
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"
    user = await client.request(method, path, json=body, headers=plain_user)
    assert user.status_code == 403
    assert user.json()["code"] == "forbidden"


async def test_export_api_end_to_end(
    client: Client, analyst: dict[str, str], conn: asyncpg.Connection, settings: Settings, rolled_up: None
) -> None:
    r = await client.post(
        "/v1/exports", json={"from": str(D), "to": str(D + dt.timedelta(days=1))}, headers=analyst
    )
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    assert r.json()["status"] == "pending"
    status = {}
    for _ in range(200):
        status = (await client.get(f"/v1/exports/{export_id}", headers=analyst)).json()
        if status["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    assert status["status"] == "done", status
    assert status["rows"] == 30
    assert status["download_url"] == f"/v1/exports/{export_id}/download"

    # Another analyst's export is not yours: 404, as for an id that does not exist. An admin sees it.
    other = auth_header(settings, await create_user(conn, "analyst"), "analyst")
    for path in (f"/v1/exports/{export_id}", status["download_url"]):
        refused = await client.get(path, headers=other)
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "export_not_found"
    admin = auth_header(settings, await create_user(conn, "admin"), "admin")
    assert (await client.get(f"/v1/exports/{export_id}", headers=admin)).status_code == 200
    download = await client.get(status["download_url"], headers=admin)
    assert download.status_code == 200
    table = pq.read_table(io.BytesIO(download.content))
    assert table.num_rows == 30
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert sorted(set(table.column("event_date").to_pylist())) == [D, D + dt.timedelta(days=1)]
    assert table.schema.field("event_id").type == pa.uuid()
    # One property per event, as a map (a list of key/value pairs in PyArrow).
    props = [json.loads(p) for p in table.column("properties").to_pylist()]
    assert sorted(p["k"] for p in props) == sorted(str(i) for i in range(30))
    assert all(list(p) == ["k"] for p in props)


async def test_export_refusals(client: Client, analyst: dict[str, str], conn: asyncpg.Connection) -> None:
    for body in (
        {"from": "2026-03-10", "to": "2026-03-01"},
        {"from": "2024-01-01", "to": "2026-03-01"},
        {"from": "not a date", "to": "2026-03-01"},
        {"to": "2026-03-01"},
        {"from": "9999-12-31", "to": "9999-12-31"},
    ):
        r = await client.post("/v1/exports", json=body, headers=analyst)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] == "validation_error"
        assert {d["field"] for d in r.json()["details"]} <= {"body.from", "body.to"}, r.text
    big = {"from": "2026-03-01", "to": "2026-03-01", "pad": "x" * 3_000_000}
    r = await client.post("/v1/exports", json=big, headers=analyst)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large"
    assert "4096 bytes" in r.json()["message"]
    assert (await client.get(f"/v1/exports/{uuid.uuid4()}", headers=analyst)).status_code == 404
    assert (await client.get("/v1/exports/not-a-uuid", headers=analyst)).status_code == 404

    # Not finished yet: no download.
    owner = await conn.fetchval("SELECT user_id FROM users WHERE role = 'analyst'")
    pending = await conn.fetchval(
        "INSERT INTO exports (requested_by, date_from, date_to) VALUES ($1, $2, $2) RETURNING export_id",
        owner,
        D,
    )
    r = await client.get(f"/v1/exports/{pending}/download", headers=analyst)
    assert r.status_code == 409
    assert r.json()["code"] == "export_not_ready"

    # Unfinished exports per analyst are capped.
    await conn.execute(
        "INSERT INTO exports (requested_by, date_from, date_to) SELECT $1, $2, $2 FROM generate_series(1, 2)",
        owner,
        D,
    )
    r = await client.post("/v1/exports", json={"from": str(D), "to": str(D)}, headers=analyst)
    assert r.status_code == 429
    assert r.headers["retry-after"]


async def test_old_export_files_expire_and_dead_exports_are_reported(
    db: Database, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    from aggregation.exports import export_file_path, get_export
    from aggregation.jobs import expire_exports

    owner = await create_user(conn, "analyst")
    old = await conn.fetchval(
        """INSERT INTO exports (requested_by, date_from, date_to, status, finished_at)
           VALUES ($1, $2, $2, 'done', now() - interval '8 days') RETURNING export_id""",
        owner,
        D,
    )
    fresh = await conn.fetchval(
        """INSERT INTO exports (requested_by, date_from, date_to, status, finished_at)
           VALUES ($1, $2, $2, 'done', now() - interval '1 day') RETURNING export_id""",
        owner,
        D,
    )
    for export_id in (old, fresh):
        path = export_file_path(tmp_path, export_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1")
    assert await expire_exports(db, tmp_path) == 1
    assert not export_file_path(tmp_path, old).exists()
    assert export_file_path(tmp_path, fresh).exists()
    assert await conn.fetchval("SELECT status FROM exports WHERE export_id = $1", old) == "expired"

    # A running export whose process died stops claiming to run.
    dead = await conn.fetchval(
        """INSERT INTO exports (requested_by, date_from, date_to, status, started_at, heartbeat_at)
           VALUES ($1, $2, $2, 'running', now() - interval '1 hour', now() - interval '1 hour')
           RETURNING export_id""",
        owner,
        D,
    )
    async with db.transaction() as c:
        row = await get_export(c, dead)
    assert row["status"] == "failed"
    assert "interrupted" in row["error"]


async def test_export_list_is_yours_newest_first_and_an_admins_is_everyones(
    client: Client, analyst: dict[str, str], conn: asyncpg.Connection, settings: Settings
) -> None:
    """``GET /v1/exports`` (it answered 405): your own exports, keyset-paginated; admins see all."""
    mine_id = await conn.fetchval("SELECT user_id FROM users WHERE role = 'analyst'")
    other_id = await create_user(conn, "analyst")
    made = []
    for i, owner in enumerate((mine_id, other_id, mine_id, mine_id)):
        made.append(
            await conn.fetchval(
                """INSERT INTO exports (requested_by, date_from, date_to, created_at)
                   VALUES ($1, '2026-03-01', '2026-03-02', timestamp '2026-03-10' + $2 * interval '1 hour')
                   RETURNING export_id""",
                owner,
                i,
            )
        )
    r = await client.get("/v1/exports?limit=2", headers=analyst)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["id"] for e in page["items"]] == [str(made[3]), str(made[2])]
    r = await client.get(f"/v1/exports?limit=2&cursor={page['next_cursor']}", headers=analyst)
    assert [e["id"] for e in r.json()["items"]] == [str(made[0])]
    assert r.json()["next_cursor"] is None
    admin = auth_header(settings, await create_user(conn, "admin"), "admin")
    r = await client.get("/v1/exports", headers=admin)
    assert {e["id"] for e in r.json()["items"]} == {str(e) for e in made}
    user = auth_header(settings, await create_user(conn, "user"), "user")
    assert (await client.get("/v1/exports", headers=user)).status_code == 403
    assert (await client.get("/v1/exports?cursor=!!", headers=analyst)).status_code == 422
