"""The kernel's fast path: same errors, request ids and limits as the framework path."""

from __future__ import annotations

import json
from typing import Any

from asyncpg.exceptions._base import InternalClientError
from litestar import post
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from kernel.app import App
from kernel.errors import NotFoundError
from kernel.fastpath import FastRequest, FastResponse, FastRoute, FastRouter
from kernel.http_errors import exception_handlers
from kernel.observability import RequestIdMiddleware

calls: list[str] = []


async def _echo(request: FastRequest) -> FastResponse:
    calls.append("fast")
    if request.params["name"] == "missing":
        raise NotFoundError("No such thing.")
    if request.params["name"] == "crash":
        raise RuntimeError("a bug")
    if request.params["name"] == "lost":  # asyncpg on a pooled connection broken by a PostgreSQL restart
        raise InternalClientError("cannot switch to state 12; another operation (2) is in progress")
    return FastResponse(
        200, {"name": request.params["name"], "size": len(request.body), "h": request.headers.get("x-h")}
    )


@post("/things/{name:str}/echo", status_code=200)
async def slow_echo(name: FromPath[str]) -> dict[str, Any]:
    calls.append("framework")
    return {"name": name}


def _app() -> App:
    app = App(
        route_handlers=[slow_echo], exception_handlers=exception_handlers, middleware=[RequestIdMiddleware]
    )
    app.fast = FastRouter(
        [FastRoute("POST", r"/things/(?P<name>[^/]+)/echo/?", _echo, max_body=100)], lambda: app.state
    )
    return app


async def test_matching_requests_take_the_fast_path() -> None:
    calls.clear()
    async with AsyncTestClient(app=_app()) as client:
        r = await client.post(
            "/things/a%20b/echo", content=b"12345", headers={"X-H": "v", "X-Request-ID": "abc-1"}
        )
        assert r.status_code == 200
        assert r.json() == {"name": "a b", "size": 5, "h": "v"}
        assert r.headers["x-request-id"] == "abc-1"
        assert r.headers["content-type"] == "application/json"
        r = await client.post("/things/x/echo/")
        assert r.status_code == 200
        assert r.json()["name"] == "x"
    assert calls == ["fast", "fast"]


async def test_a_repeated_header_reads_as_its_first_value() -> None:
    """Two header lines of one name (the test client would merge them) read as the first, as in Litestar."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"x-h", b"first"), (b"x-h", b"second")]
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/things/x/echo", "headers": headers}
    scope |= {"query_string": b"", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80)}
    scope |= {"client": ("127.0.0.1", 1), "root_path": "", "raw_path": b"/things/x/echo"}
    await _app()(scope, receive, send)
    assert (sent[0]["status"], json.loads(sent[1]["body"])["h"]) == (200, "first")


async def test_other_methods_and_paths_go_to_litestar() -> None:
    calls.clear()
    async with AsyncTestClient(app=_app()) as client:
        r = await client.get("/things/x/echo")
        assert r.status_code == 405
        assert set(r.json()) >= {"code", "message"}
        r = await client.post("/things/x/echo/more")
        assert r.status_code == 404
        assert set(r.json()) >= {"code", "message"}
    assert calls == []


async def test_errors_use_the_one_mapping() -> None:
    async with AsyncTestClient(app=_app()) as client:
        r = await client.post("/things/missing/echo")
        assert r.status_code == 404
        assert r.json() == {"code": "not_found", "message": "No such thing."}
        assert r.headers["x-request-id"]
        r = await client.post("/things/crash/echo")
        assert r.status_code == 500
        assert r.json() == {"code": "internal_error", "message": "Internal server error."}
        r = await client.post("/things/lost/echo")
        assert r.status_code == 503
        assert r.json()["code"] == "unavailable"
        assert r.headers["retry-after"] == "2"


async def test_bodies_over_the_limit_are_refused() -> None:
    calls.clear()
    async with AsyncTestClient(app=_app()) as client:
        r = await client.post("/things/x/echo", content=b"x" * 101)
        assert r.status_code == 413
        assert r.json()["code"] == "payload_too_large"

        r = await client.post("/things/x/echo", content=b"x" * 100)
        assert r.status_code == 200
        assert r.json()["size"] == 100
    assert calls == ["fast"]


async def test_the_limit_holds_while_reading_a_body_of_unannounced_length() -> None:
    app = _app()
    messages = [{"type": "http.request", "body": b"x" * 30, "more_body": True} for _ in range(5)]
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return messages[received - 1]

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/things/x/echo", "headers": [], "query_string": b""}
    scope |= {
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }
    scope |= {"root_path": "", "raw_path": b"/things/x/echo"}
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert received == 4  # stopped at the chunk that crossed 100 bytes, not at the end of the body
