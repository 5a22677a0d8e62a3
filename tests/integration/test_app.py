"""The app skeleton: probes, JSON errors everywhere, request ids, OpenAPI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from litestar.testing import AsyncTestClient

from corp_astro.app import create_app
from tests.conftest import make_settings
from tests.support import TcpProxy


async def test_health_and_ready(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/health")).json() == {"status": "ok"}
    r = await client.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


async def test_unknown_route_is_json_404(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/no/such/route")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"code": "not_found", "message": "Not Found"}


async def test_wrong_method_is_json_405(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    r = await client.delete("/health")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"


async def test_request_id_is_assigned_or_kept(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert len((await client.get("/health")).headers["x-request-id"]) == 32
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


async def test_openapi_schema_served(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert "/ready" in r.json()["paths"]
    for page in ("/schema", "/schema/swagger"):
        assert (await client.get(page)).status_code == 200, page
    # An unknown documentation page is the API's JSON 404 (Litestar's own is an HTML page).
    r = await client.get("/schema/redoc")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert r.json()["message"]


async def test_ready_is_503_while_database_down_and_recovers(clean_db: str, tmp_path: Path) -> None:
    proxy = TcpProxy.for_url(clean_db)
    proxy.start()
    app = create_app(make_settings(proxy.url_through(clean_db), tmp_path))
    async with AsyncTestClient(app=app) as client:
        first = await client.get("/ready")
        assert first.status_code == 200, first.text
        proxy.cut()
        r = await client.get("/ready")
        assert r.status_code == 503
        assert r.json()["code"] == "database_unavailable"
        assert r.headers["retry-after"]
        proxy.start()
        for _ in range(50):  # the pool reconnects by itself; no restart of the app
            if (await client.get("/ready")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await client.get("/ready")).status_code == 200
    proxy.close()


async def test_ready_is_503_when_migrations_pending(clean_db: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(clean_db)
    try:
        real = await conn.fetchval("SELECT version_num FROM alembic_version")
        await conn.execute("UPDATE alembic_version SET version_num = '0001'")
        try:
            async with AsyncTestClient(app=create_app(make_settings(clean_db, tmp_path))) as client:
                r = await client.get("/ready")
                assert r.status_code == 503
                assert r.json()["code"] == "migrations_pending"
        finally:
            await conn.execute("UPDATE alembic_version SET version_num = $1", real)
    finally:
        await conn.close()
