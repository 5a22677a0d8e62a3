"""Request ids (32 hex digits, unique, one random prefix per process) and the access log."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Litestar, Request, post

from kernel.observability import RequestIdMiddleware, new_request_id


def test_request_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[:16] for i in ids}) == 1


async def test_access_log_says_499_when_the_client_left_mid_request() -> None:
    @post("/echo")
    async def echo(request: Request[Any, Any, Any]) -> dict[str, int]:
        return {"n": len(await request.body())}

    app = Litestar([echo], middleware=[RequestIdMiddleware])
    messages = iter(
        [{"type": "http.request", "body": b"par", "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("corp_astro.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        await app(scope, receive, send)  # type: ignore[arg-type]
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    # Litestar answered its "client disconnected" error with a 500 that nobody received.
    assert sent[0]["status"] == 500
    (record,) = records
    assert record.status == 499  # type: ignore[attr-defined]
