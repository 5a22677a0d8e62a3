"""The API answers as its OpenAPI document says: schemathesis over every operation of a real server.

A ``corp-astro serve`` process on 127.0.0.1 serves the document it is tested against. Schemathesis
generates valid and invalid requests for each operation (a few per operation, derandomized, so a run is
bounded and repeatable), sends each with every credential the operation accepts (an admin's Bearer
token and, in turn, a user's or an analyst's; an app's write key as HTTP Basic), and checks that no answer is a 5xx and that
each one's status, content type and body are documented.

Operations that end a session (logout, erasing or changing one's own account) get a fresh user per
request, so that the shared credentials stay valid for every other operation. Half the requests name
rows that exist (made through the API first: a running experiment, the user's business, report,
device ...), so the success answers are checked too, not only the 404s of random ids.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import os
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from schemathesis import checks

from corp_astro.app import create_app
from kernel.auth import create_access_token, generate_write_key, hash_password, hash_write_key
from kernel.db import uuid7
from tests.conftest import make_settings
from tests.support import LiveServer, truncate_all

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
_CONFIG = {
    "seed": 14,
    "generation": {
        "mode": "all",
        "max-examples": EXAMPLES_PER_OPERATION,
        "deterministic": True,
        "database": "none",
        "with-security-parameters": False,
    },
    # Examples and fuzzing. The coverage phase's boundary cases (schema-violating types, empty strings,
    # extreme values) triple the run time (measured: 170 s instead of 50 s), so CI leaves them out; set
    # CORP_ASTRO_SCHEMATHESIS_COVERAGE=1 to run them (they found a 500 in ingest and two undocumented
    # statuses, all fixed).
    "phases": {
        "coverage": {"enabled": os.environ.get("CORP_ASTRO_SCHEMATHESIS_COVERAGE") == "1"},
        "stateful": {"enabled": False},
    },
    "cache": {"enabled": False},
}
_SESSION_ENDING = {
    ("POST", "/v1/auth/logout"),
    ("DELETE", "/v1/users/me"),
    ("PATCH", "/v1/users/me"),
}
_EXPERIMENT = "checkout-button"
# An admin's generated change to the known user could suspend it, and every later request would be a 401.
_RANDOM_IDS_ONLY = {("PATCH", "/v1/users/{user_id}")}
_PASSWORD_HASH = hash_password("correct horse battery")


@dataclass
class Credentials:
    """Who calls: Bearer headers per role, the write key's Basic header, and how to mint a new user."""

    database_url: str
    secret: str
    admin: dict[str, str]
    analyst: dict[str, str]
    user: dict[str, str]
    user_id: uuid.UUID
    app: dict[str, str]
    known: dict[str, str] = field(default_factory=dict)

    def bearer(self, user_id: uuid.UUID, role: str) -> dict[str, str]:
        settings = make_settings(self.database_url, Path("."), jwt_secret_override=self.secret)
        token, _ = create_access_token(settings, user_id, role)
        return {"Authorization": f"Bearer {token}"}

    def fresh_user(self) -> dict[str, str]:
        """A new account's Bearer header, for an operation that ends the caller's session."""
        user_id = asyncio.run(_insert_user(self.database_url, "user"))
        return self.bearer(user_id, "user")


async def _insert_user(url: str, role: str) -> uuid.UUID:
    user_id = uuid7()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO users (user_id, email, password_hash, first_name, last_name, role)
               VALUES ($1, $2, $3, 'Schema', 'Thesis', $4)""",
            user_id,
            f"{role}-{user_id.hex[:12]}@example.com",
            _PASSWORD_HASH,
            role,
        )
    finally:
        await conn.close()
    return user_id


async def _seed(url: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]:
    """An admin, an analyst, a user and a write key, on empty tables."""
    await truncate_all(url)
    admin_id = await _insert_user(url, "admin")
    analyst_id = await _insert_user(url, "analyst")
    user_id = await _insert_user(url, "user")
    key = generate_write_key()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO api_sources (name, key_hash, key_prefix) VALUES ('schemathesis', $1, $2)",
            hash_write_key(key),
            key[:12],
        )
    finally:
        await conn.close()
    return admin_id, analyst_id, user_id, key


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("schemathesis-data")
    with LiveServer(database_url, env={"CORP_ASTRO_DATA_DIR": str(data_dir)}) as live:
        yield live


@pytest.fixture(scope="module")
def credentials(server: LiveServer, database_url: str) -> Credentials:
    admin_id, analyst_id, user_id, key = asyncio.run(_seed(database_url))
    secret = server._env["CORP_ASTRO_JWT_SECRET"]
    creds = Credentials(database_url, secret, {}, {}, {}, user_id, {})
    creds.admin = creds.bearer(admin_id, "admin")
    creds.analyst = creds.bearer(analyst_id, "analyst")
    creds.user = creds.bearer(user_id, "user")
    creds.app = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    creds.known = _resources(server.base_url, creds)
    return creds


def _resources(base_url: str, creds: Credentials) -> dict[str, str]:
    """A running experiment and one row of each resource, made through the API: path parameter -> id."""
    known = {"name": _EXPERIMENT, "user_id": str(creds.user_id)}
    made = [
        # (who, path, body, the id's path parameter, the id's field in the answer)
        (creds.admin, "/v1/experiments", _EXPERIMENT_BODY, None, None),
        (creds.user, "/v1/businesses", {"name": "Acme"}, "business_id", "business_id"),
        (creds.user, "/v1/reports", {"report_type": "natal", "title": "Chart"}, "report_id", "report_id"),
        (
            creds.user,
            "/v1/users/me/devices",
            {"device_token": "token-1", "platform": "ios"},
            "device_id",
            "device_id",
        ),
        (
            creds.user,
            "/v1/scheduled-notifications",
            {"title": "Hi", "body": "Hello", "scheduled_time": _in_a_month()},
            "schedule_id",
            "schedule_id",
        ),
        (
            creds.admin,
            "/v1/subscriptions",
            {"user_id": known["user_id"], "plan_id": "pro", "status": "active", "start_date": "2026-01-01"},
            "subscription_id",
            "subscription_id",
        ),
        (creds.admin, "/v1/exports", {"from": "2026-11-01", "to": "2026-11-02"}, "export_id", "id"),
    ]
    for headers, path, body, param, id_field in made:
        r = httpx.post(base_url + path, headers=headers, json=body, timeout=30)
        assert r.status_code in (200, 201, 202), (path, r.text)
        if param is not None:
            known[param] = str(r.json()[id_field])
    return known


def _in_a_month() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()


_EXPERIMENT_BODY = {
    "name": _EXPERIMENT,
    "start_date": "2020-01-01",
    "goal_event": "purchase",
    "variants": [{"name": "control", "traffic_percentage": 50}, {"name": "b", "traffic_percentage": 50}],
}


def _document() -> dict[str, Any]:
    """The document as the app serves it at /schema/openapi.json (no database needed to serve it).

    It is read at collection, since schemathesis makes one test per operation from it; the server under
    test runs the same code (``test_openapi.py`` checks the served document itself).
    """
    app = create_app(make_settings("postgresql://127.0.0.1/unused", Path(tempfile.gettempdir())))

    async def fetch() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            r = await client.get("/schema/openapi.json")
            assert r.status_code == 200
            document: dict[str, Any] = r.json()
            return document

    return asyncio.run(fetch())


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict(_CONFIG))
_turn = itertools.count()
_roles = itertools.count()


def _callers(case: Any, creds: Credentials) -> list[dict[str, str]]:
    """Every credential the operation accepts (none for a public one)."""
    operation = case.operation
    if (operation.method.upper(), operation.path) in _SESSION_ENDING:
        return [creds.fresh_user()]
    schemes = {name for requirement in operation.definition.raw.get("security", []) for name in requirement}
    callers = []
    if "writeKey" in schemes:
        callers.append(creds.app)
    if "bearerAuth" in schemes:
        # An admin, and in turn a user or an analyst (analytics, exports and results are the analyst's).
        callers += [creds.admin, creds.user if next(_roles) % 2 else creds.analyst]
    return callers or [{}]


def _known_names(case: Any, creds: Credentials) -> None:
    """Every other request names rows that exist (the running experiment, the user, the user's business,
    report, device ...), so that success answers are checked too, not only a random id's 404."""
    if next(_turn) % 2:
        return
    operation = case.operation
    if (operation.method.upper(), operation.path) in _RANDOM_IDS_ONLY:
        return
    params = case.path_parameters or {}
    for name in params:
        if name in creds.known:
            params[name] = creds.known[name]
    if isinstance(case.body, dict) and operation.path.endswith(("/assignments", "/conversions")):
        case.body = {"user_id": creds.known["user_id"]}


# The statuses each operation answered, for the check that the run reached the handlers at all.
_SEEN: dict[str, set[int]] = defaultdict(set)


@schema.parametrize()
def test_every_answer_is_documented(case: Any, server: LiveServer, credentials: Credentials) -> None:
    _known_names(case, credentials)
    for headers in _callers(case, credentials):
        response = case.call_and_validate(
            base_url=server.base_url, headers=headers, checks=CHECKS, timeout=30
        )
        _SEEN[case.operation.label].add(response.status_code)


def test_the_run_got_past_authentication() -> None:
    """Conformance alone would pass if every answer were a documented 401: the credentials must work."""
    if not _SEEN:
        pytest.skip("no schemathesis case ran in this session (deselected)")
    print({label: sorted(statuses) for label, statuses in sorted(_SEEN.items())})
    only_401 = sorted(label for label, statuses in _SEEN.items() if statuses <= {401})
    assert only_401 == []
    succeeded = [label for label, statuses in _SEEN.items() if any(200 <= s < 300 for s in statuses)]
    # The rest are a random id's 404 or a generated body's 422 (measured: 55 of 83 reach a 2xx).
    assert len(succeeded) >= len(_SEEN) // 2, sorted(set(_SEEN) - set(succeeded))
