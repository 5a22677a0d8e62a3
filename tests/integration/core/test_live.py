"""Two real ``corp-astro serve`` processes on one database: login throttling and scheduled delivery
hold across processes, and concurrent requests are truly concurrent here."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.integration.core.conftest import PASSWORD, new_email
from tests.support import LiveServer

ENV = {
    "CORP_ASTRO_TRUSTED_PROXIES": "127.0.0.1/32",
    "CORP_ASTRO_AUTH_ACCOUNT_IP_ATTEMPTS": "3",
    "CORP_ASTRO_AUTH_IP_ATTEMPTS": "6",
    "CORP_ASTRO_AUTH_ACCOUNT_LOCK_ATTEMPTS": "12",
    "CORP_ASTRO_DELIVERY_INTERVAL_SECONDS": "0.5",
    "CORP_ASTRO_LOG_LEVEL": "INFO",
}


def _start_logging_to(server: LiveServer, log: Path) -> LiveServer:
    """Start ``server`` with its stderr (its JSON log) going to ``log``: the child inherits fd 2."""
    saved = os.dup(2)
    with log.open("wb") as f:
        os.dup2(f.fileno(), 2)
        try:
            server.start()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return server


@pytest.fixture
def servers(clean_db: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    a = _start_logging_to(LiveServer(clean_db, env=ENV, scheduler=True), tmp_path / "a.log")
    try:
        b = _start_logging_to(LiveServer(clean_db, env=ENV, scheduler=True), tmp_path / "b.log")
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def _ip(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{n}"}


async def _register(http: httpx.AsyncClient, base: str) -> tuple[str, dict[str, str]]:
    email = new_email()
    r = await http.post(
        f"{base}/v1/auth/register",
        json={"email": email, "password": PASSWORD, "first_name": "A", "last_name": "B"},
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        f"{base}/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=_ip(250)
    )
    assert r.status_code == 200, r.text
    return email, {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_login_throttling_holds_across_processes(
    servers: tuple[LiveServer, LiveServer], conn: asyncpg.Connection
) -> None:
    a, b = (s.base_url for s in servers)
    async with httpx.AsyncClient(timeout=30) as http:
        email, _ = await _register(http, a)
        # Per account and address: failures from one address alternate between the two processes.
        for i in range(3):
            r = await http.post(
                f"{(a, b)[i % 2]}/v1/auth/login",
                json={"email": email, "password": "wrong pass!"},
                headers=_ip(7),
            )
            assert r.status_code == 401
        for base in (a, b):
            r = await http.post(
                f"{base}/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=_ip(7)
            )
            assert r.status_code == 429
            assert int(r.headers["Retry-After"]) >= 1
        # The owner, from another address, is not locked out by the guesser's failures (finding 7).
        r = await http.post(f"{b}/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=_ip(8))
        assert r.status_code == 200

        # A burst of parallel guesses from one address against a fresh account, split over both
        # processes: counted before any password is checked, so exactly 3 get through to a check.
        target, _ = await _register(http, b)
        burst = [
            http.post(
                f"{(a, b)[i % 2]}/v1/auth/login",
                json={"email": target, "password": f"guess {i}!"},
                headers=_ip(100),
            )
            for i in range(12)
        ]
        codes = Counter(r.status_code for r in await asyncio.gather(*burst))
        assert codes == {401: 3, 429: 9}, codes

        # Per address (X-Forwarded-For from the trusted proxy 127.0.0.1): 6 failures for unknown accounts.
        victim, _ = await _register(http, a)
        for i in range(6):
            r = await http.post(
                f"{(a, b)[i % 2]}/v1/auth/login",
                json={"email": new_email(), "password": "wrong pass!"},
                headers=_ip(200),
            )
            assert r.status_code == 401
        r = await http.post(
            f"{b}/v1/auth/login", json={"email": victim, "password": PASSWORD}, headers=_ip(200)
        )
        assert r.status_code == 429
        r = await http.post(
            f"{a}/v1/auth/login", json={"email": victim, "password": PASSWORD}, headers=_ip(201)
        )
        assert r.status_code == 200

        # Account-wide: failures spread over many addresses (a botnet) lock the account only at the much
        # higher threshold (12 here), for every address, and the owner is told.
        locked, headers = await _register(http, b)
        for i in range(12):
            r = await http.post(
                f"{(a, b)[i % 2]}/v1/auth/login",
                json={"email": locked, "password": "wrong pass!"},
                headers=_ip(150 + i),
            )
            assert r.status_code == 401
        r = await http.post(
            f"{a}/v1/auth/login", json={"email": locked, "password": PASSWORD}, headers=_ip(249)
        )
        assert r.status_code == 429
        r = await http.get(f"{a}/v1/notifications", headers=headers)
        assert r.status_code == 200, r.text
        assert [n["type"] for n in r.json()["items"]] == ["security"]
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'account_locked'") == 1


async def test_scheduled_notifications_are_delivered_exactly_once_by_two_processes(
    servers: tuple[LiveServer, LiveServer], conn: asyncpg.Connection, tmp_path: Path
) -> None:
    a, b = (s.base_url for s in servers)
    async with httpx.AsyncClient(timeout=30) as http:
        _, headers = await _register(http, a)
        user_id = uuid.UUID((await http.get(f"{b}/v1/users/me", headers=headers)).json()["user_id"])
        # A few through the API, due in a moment...
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
        for i in range(5):
            r = await http.post(
                f"{(a, b)[i % 2]}/v1/scheduled-notifications",
                headers=headers,
                json={"title": f"api {i}", "body": "b", "scheduled_time": soon},
            )
            assert r.status_code == 201
    # ...and many already due, inserted while both schedulers are polling.
    for _ in range(3):
        await conn.execute(
            """INSERT INTO scheduled_notifications (user_id, title, body, scheduled_time)
               SELECT $1, 'bulk ' || g, 'b', (now() AT TIME ZONE 'UTC') FROM generate_series(1, 100) g""",
            user_id,
        )
        await asyncio.sleep(0.3)
    deadline = time.monotonic() + 30
    while await conn.fetchval("SELECT count(*) FROM scheduled_notifications WHERE status = 'pending'"):
        assert time.monotonic() < deadline, "delivery did not finish"
        await asyncio.sleep(0.2)

    assert await conn.fetchval("SELECT count(*) FROM scheduled_notifications WHERE status = 'sent'") == 305
    per_schedule = await conn.fetch(
        "SELECT data->>'schedule_id' AS sid, count(*) AS n FROM notifications GROUP BY 1"
    )
    assert len(per_schedule) == 305
    assert {r["n"] for r in per_schedule} == {1}
    # The push provider was called once per schedule, across both processes' logs.
    await asyncio.sleep(0.5)  # let the last log lines reach the files
    pushes: dict[str, list[dict[str, str]]] = {}
    for name in ("a", "b"):
        lines = (tmp_path / f"{name}.log").read_text().splitlines()
        pushes[name] = [json.loads(line) for line in lines if '"push sent"' in line]
    every = pushes["a"] + pushes["b"]
    assert len(every) == 305
    assert len({p["schedule_id"] for p in every}) == 305
    print(f"\ndeliveries by process: a={len(pushes['a'])} b={len(pushes['b'])}")
