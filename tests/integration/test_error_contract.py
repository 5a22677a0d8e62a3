"""The error contract (docs/errors.md) on every route of the real app.

The routes come from the app itself (Litestar's routes and the kernel's fast routes) and are compared
with the OpenAPI document, so a new route is covered without editing this file. The API is every route
the document lists; the rest must be hidden on purpose (``include_in_schema=False``: the schema pages,
the browser UI under /app, whose errors are HTML pages). Each route is called
with valid credentials for it (a fresh admin's Bearer token; an app's write key over HTTP Basic where a
Bearer token is refused), and:

- every route that takes a body (it answers ``invalid_json`` to an empty body; every handler with a
  ``data`` parameter must) gets malformed JSON, invalid UTF-8, JSON that is not an object, a document
  nested too deeply, and a body over its limit (announced by Content-Length, and streamed without one);
- every other write route gets the same bodies and must ignore them (the answer it gives to no body);
- every enum query parameter gets a value outside the enum.

Every answer must have the one shape: ``{code, message[, details]}``, ``details`` a list of
``{field, message}``; the same bad input must get the same status, code and message on every route; a
413 states the route's limit; nothing answers 5xx.
"""

from __future__ import annotations

import asyncio
import re
import typing
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from corp_astro.app import create_app
from kernel.app import App
from kernel.settings import Settings
from tests.conftest import make_settings
from tests.integration.core.conftest import make_user
from tests.integration.experiments.conftest import basic, make_write_key
from tests.support import truncate_all

Client = AsyncTestClient  # type: ignore[type-arg]

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# Keys a details item may have besides field and message (each documented in docs/errors.md).
DOCUMENTED_EXTRA = {"allowed", "index", "messageId", "reason"}
# Arguments a handler gets from the framework or a dependency rather than from the query string.
_NOT_QUERY = {"data", "request", "state", "headers", "cookies", "query", "scope", "socket", "body"}

# One bad body of each kind; the same input must get the same answer on every route that takes a body.
NOT_JSON: dict[str, bytes] = {
    "malformed": b"{bad json",
    "truncated": b'{"name": "x",',
    "trailing garbage": b'{"a": 1} x',
    "empty": b"",
    "blank": b"  \n",
    "invalid utf-8 in a value": b'{"name": "\xff\xfe"}',
    "invalid utf-8 in a key": b'{"\xff": 1}',
    "invalid utf-8 in an unknown field": b'{"zz": "caf\xe9", "name": 1}',
    "not utf-8 at all": b"\xff\xfe{}",
    "array": b"[1, 2]",
    "empty array": b"[]",
    "number": b"42",
    "string": b'"text"',
    "null": b"null",
    "true": b"true",
    # Deeper than the decoder goes (about 1,000 levels), and still under every route's limit (4 KB).
    "nested too deeply": b"[" * 1200 + b"]" * 1200,
}


@dataclass(frozen=True)
class Route:
    """One method of one route, as Litestar declares it (``/v1/businesses/{business_id:uuid}``)."""

    method: str
    template: str
    handler: Any = field(compare=False, hash=False)

    @property
    def url(self) -> str:
        def fill(m: re.Match[str]) -> str:
            return str(uuid.uuid4()) if m["type"] == "uuid" else "contract-x"

        return re.sub(r"\{(?P<name>\w+):(?P<type>\w+)\}", fill, self.template)

    @property
    def documented(self) -> str:
        """The OpenAPI path (no parameter types)."""
        return re.sub(r"\{(\w+):\w+\}", r"{\1}", self.template)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def app_routes(app: App) -> list[Route]:
    """Every method of every HTTP route of the app (OPTIONS and HEAD are Litestar's own)."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append(Route(method, route.path, handler))
    return found


def documented_operations(app: App) -> set[tuple[str, str]]:
    """(method, path) of every operation in the app's OpenAPI document."""
    paths = app.openapi_schema.to_schema()["paths"]
    return {(m.upper(), path) for path, item in paths.items() for m in item if m.upper() in _METHODS}


@dataclass
class Env:
    app: App
    client: Client
    conn: asyncpg.Connection
    settings: Settings
    write_key: dict[str, str]
    all_routes: list[Route]  # every route of the app
    routes: list[Route]  # the API: the routes the OpenAPI document lists
    by_key: set[Route] = field(default_factory=set)  # routes that refuse a Bearer token (write keys)

    def fast_route(self, route: Route) -> Any:
        fast = self.app.fast
        if fast is None:
            return None
        url = route.url
        return next((f for f in fast.routes if f.method == route.method and re.fullmatch(f.path, url)), None)

    async def auth(self, route: Route) -> dict[str, str]:
        if route in self.by_key:
            return self.write_key
        return (await make_user(self.conn, self.settings, role="admin")).headers

    async def send(
        self,
        route: Route,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        fast: bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """``route`` with ``body``; ``fast=False`` serves a fast route through Litestar's handler."""
        sent = {**(await self.auth(route)), "Content-Type": "application/json", **(headers or {})}
        saved = self.app.fast
        if not fast:
            self.app.fast = None
        try:
            return await self.client.request(
                route.method, route.url, content=body, params=params, headers=sent
            )
        finally:
            self.app.fast = saved


@pytest.fixture(scope="module")
async def env(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    await truncate_all(database_url)
    settings = make_settings(database_url, tmp_path_factory.mktemp("contract"))
    app = create_app(settings)
    conn = await asyncpg.connect(database_url, server_settings={"timezone": "UTC"})
    try:
        key = basic(await make_write_key(conn, "contract"))
        async with AsyncTestClient(app=app) as client:
            every = app_routes(app)
            api = [r for r in every if (r.method, r.documented) in documented_operations(app)]
            e = Env(app, client, conn, settings, key, every, api)
            for route in e.routes:
                # Whoever the route is for: a Bearer token refused with 401 means it takes a write key.
                if route.method in WRITE_METHODS and (await e.send(route, b"")).status_code == 401:
                    e.by_key.add(route)
            yield e
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def baselines(env: Env) -> dict[Route, httpx.Response]:
    """Each write route's answer to no body at all."""
    return {r: await env.send(r, b"") for r in env.routes if r.method in WRITE_METHODS}


@pytest.fixture(scope="module")
async def optional_body(env: Env, baselines: dict[Route, httpx.Response]) -> set[Route]:
    """Routes that accept no body but read one when sent (malformed JSON is invalid_json there)."""
    return {
        r
        for r, answer in baselines.items()
        if not takes_body(answer) and takes_body(await env.send(r, NOT_JSON["malformed"]))
    }


def takes_body(answer: httpx.Response) -> bool:
    return answer.status_code == 400 and answer.json().get("code") == "invalid_json"


def check_shape(route: Route, r: httpx.Response, problems: list[str]) -> dict[str, Any] | None:
    """The one error shape; records what is wrong in ``problems`` and returns the body if it is one."""
    where = f"{route} -> {r.status_code}"
    if r.status_code >= 500:
        problems.append(f"{where}: a 5xx ({r.text[:200]})")
        return None
    if r.status_code < 400:
        return None
    try:
        body = r.json()
    except ValueError:
        problems.append(f"{where}: not JSON: {r.text[:200]!r}")
        return None
    if not isinstance(body, dict) or not {"code", "message"} <= set(body) <= {"code", "message", "details"}:
        problems.append(f"{where}: not {{code, message[, details]}}: {body!r}"[:300])
        return None
    if not (isinstance(body["code"], str) and isinstance(body["message"], str) and body["message"]):
        problems.append(f"{where}: code and message must be non-empty strings: {body!r}"[:300])
    details = body.get("details")
    if "details" in body and not (isinstance(details, list) and details):
        problems.append(f"{where}: details must be a non-empty list when present: {details!r}"[:300])
    for item in details if isinstance(details, list) else []:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("field"), str)
            and isinstance(item.get("message"), str)
            and set(item) - {"field", "message"} <= DOCUMENTED_EXTRA
        ):
            problems.append(f"{where}: details item is not {{field, message}}: {item!r}"[:300])
    return body


def expected_limit(env: Env, route: Route) -> int:
    """The body limit the route enforces: its fast route's (unless the route reads its body itself),
    ingest's setting, or Litestar's."""
    fast = env.fast_route(route)
    if fast is not None and not fast.own_body:
        return int(fast.max_body)
    if route.handler.fn.__module__.startswith("ingest."):
        return env.settings.ingest.max_body_bytes
    return int(route.handler.resolve_request_max_body_size())


# --- The enumeration is complete ---------------------------------------------------------------------


async def test_every_documented_operation_and_fast_route_is_enumerated(env: Env) -> None:
    enumerated = {(r.method, r.documented) for r in env.all_routes}
    documented = documented_operations(env.app)
    assert len(documented) > 50, documented
    assert documented <= enumerated, documented - enumerated
    assert {(r.method, r.documented) for r in env.routes} == documented
    # Whatever is not documented is hidden on purpose: the schema pages themselves, the browser UI.
    schema_path = env.app.openapi_config.path if env.app.openapi_config else "/schema"
    hidden = {
        (r.method, r.documented)
        for r in env.all_routes
        if r.template.startswith(schema_path) or not r.handler.resolve_include_in_schema()
    }
    assert enumerated - documented <= hidden, (enumerated - documented) - hidden
    assert env.app.fast is not None
    assert env.app.fast.routes
    for fast in env.app.fast.routes:
        served = [r for r in env.routes if env.fast_route(r) is fast]
        assert served, f"fast route {fast.method} {fast.path} matches no Litestar route"


# --- Bodies that are not JSON objects -----------------------------------------------------------------


async def test_bodies_that_are_not_json_objects(
    env: Env, baselines: dict[Route, httpx.Response], optional_body: set[Route]
) -> None:
    problems: list[str] = []
    answers: dict[str, set[tuple[int, str, str, str]]] = {kind: set() for kind in NOT_JSON}
    body_routes = [r for r, answer in baselines.items() if takes_body(answer) or r in optional_body]
    for route, answer in baselines.items():
        check_shape(route, answer, problems)
        if "data" in route.handler.parsed_fn_signature.parameters and route not in body_routes:
            problems.append(f"{route}: has a data parameter but answers {answer.status_code} to no body")
    for route in body_routes:
        for fast in (True, False) if env.fast_route(route) else (True,):
            for kind, bad in NOT_JSON.items():
                if kind == "empty" and route in optional_body:
                    continue  # no body is a valid request there
                r = await env.send(route, bad, fast=fast)
                body = check_shape(route, r, problems)
                if r.status_code != 400 or body is None or body["code"] != "invalid_json":
                    problems.append(f"{route} ({kind}): {r.status_code} {r.text[:200]}")
                    continue
                answers[kind].add((r.status_code, body["code"], body["message"], repr(body.get("details"))))
    for kind, seen in answers.items():
        if len(seen) > 1:
            problems.append(f"{kind}: routes answer differently: {sorted(seen)}")
    assert not problems, "\n".join(problems)
    # What the enumeration found: the Segment routes, login and the experiment routes among them.
    paths = {r.template for r in body_routes}
    assert {"/v1/batch", "/v1/track", "/v1/auth/login", "/v1/experiments"} <= paths, paths
    assert any(env.fast_route(r) for r in body_routes)


async def test_write_routes_without_a_body_ignore_one(
    env: Env, baselines: dict[Route, httpx.Response], optional_body: set[Route]
) -> None:
    problems: list[str] = []
    bodyless = [r for r, a in baselines.items() if not takes_body(a) and r not in optional_body]
    assert bodyless, "every write route takes a body?"
    for route in bodyless:
        for kind, bad in NOT_JSON.items():
            r = await env.send(route, bad)
            check_shape(route, r, problems)
            if r.status_code != baselines[route].status_code:
                problems.append(f"{route} ({kind}): {r.status_code}, not {baselines[route].status_code}")
    assert not problems, "\n".join(problems)


# --- Bodies over the limit ----------------------------------------------------------------------------


async def streamed(env: Env, route: Route, size: int, *, fast: bool) -> httpx.Response:
    """``route`` with a body of ``size`` bytes in 16 KB chunks and no Content-Length (as a chunked upload
    arrives), straight through the app's ASGI interface: the test client cannot stream a body."""
    headers = {**(await env.auth(route)), "content-type": "application/json"}
    path = httpx.URL(route.url).path
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": route.method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    chunks = [b"x" * min(16 * 1024, size - at) for at in range(0, size, 16 * 1024)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        await asyncio.sleep(3600)  # the app must answer without waiting for a disconnect
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def call() -> None:
        await asyncio.wait_for(env.app(scope, receive, send), 30)

    saved = env.app.fast
    if not fast:
        env.app.fast = None
    try:
        # In the client's event loop, where the app's lifespan opened its pool.
        await asyncio.to_thread(env.client.blocking_portal.call, call)
    finally:
        env.app.fast = saved
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return httpx.Response(start["status"], headers=start["headers"], content=content)


async def test_bodies_over_the_limit_state_it(env: Env, baselines: dict[Route, httpx.Response]) -> None:
    problems: list[str] = []
    codes: set[tuple[int, str]] = set()
    body_routes = [r for r, answer in baselines.items() if takes_body(answer)]
    for route in body_routes:
        limit = expected_limit(env, route)
        filler = b'{"a": "' + b"x" * limit + b'"}'
        for fast in (True, False) if env.fast_route(route) else (True,):
            for how in ("announced", "streamed"):
                if how == "announced":
                    r = await env.send(route, filler, fast=fast)
                else:
                    r = await streamed(env, route, limit + 1, fast=fast)
                body = check_shape(route, r, problems)
                if r.status_code != 413 or body is None:
                    problems.append(f"{route} ({how}): {r.status_code} {r.text[:200]}")
                    continue
                codes.add((r.status_code, body["code"]))
                if str(limit) not in body["message"]:
                    problems.append(f"{route} ({how}): the message does not state {limit}: {body['message']}")
                if body.get("details") != [{"field": "body", "message": f"at most {limit} bytes"}]:
                    problems.append(f"{route} ({how}): details {body.get('details')!r}")
    assert codes == {(413, "payload_too_large")}, codes
    assert not problems, "\n".join(problems)


# --- Enum query parameters ----------------------------------------------------------------------------


def _enum_values(annotation: Any) -> list[Any] | None:
    """The values of a Literal (inside Optional/Annotated) or an Enum; None for anything else."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return list(typing.get_args(annotation))
    if origin is typing.Annotated:
        return _enum_values(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, __import__("enum").Enum):
        return [m.value for m in annotation]
    for arg in typing.get_args(annotation):
        if arg is not type(None) and (values := _enum_values(arg)):
            return values
    return None


def enum_query_params(route: Route) -> dict[str, list[Any]]:
    """The route's query parameters whose type is an enum: {name the client sends: allowed values}."""
    handler = route.handler
    dependencies = set(handler.resolve_dependencies())
    path_params = set(re.findall(r"\{(\w+):", route.template))
    found = {}
    for name, definition in handler.parsed_fn_signature.parameters.items():
        if name in dependencies or name in path_params or name in _NOT_QUERY:
            continue
        kwarg = definition.kwarg_definition
        if kwarg is not None and (getattr(kwarg, "header", None) or getattr(kwarg, "cookie", None)):
            continue
        values = _enum_values(definition.annotation)
        if values:
            found[getattr(kwarg, "query", None) or name] = values
    return found


async def test_wrong_enum_values_name_the_field_and_the_allowed_values(env: Env) -> None:
    problems: list[str] = []
    checked = []
    for route in env.routes:
        for name, allowed in enum_query_params(route).items():
            checked.append((str(route), name))
            r = await env.send(route, params={name: "not-one-of-them"})
            body = check_shape(route, r, problems)
            if r.status_code != 422 or body is None or body["code"] != "validation_error":
                problems.append(f"{route} ?{name}: {r.status_code} {r.text[:200]}")
                continue
            want = {
                "field": f"query.{name}",
                "message": "must be one of: " + ", ".join(map(str, allowed)),
                "allowed": allowed,
            }
            if want not in body.get("details", []):
                problems.append(f"{route} ?{name}: no {want} in {body.get('details')}")
    assert ("GET /v1/analytics/events", "granularity") in checked, checked
    assert not problems, "\n".join(problems)


async def test_granularity_week(env: Env) -> None:
    route = next(r for r in env.routes if r.template == "/v1/analytics/events")
    r = await env.send(route, params={"granularity": "week", "from": "2026-11-01", "to": "2026-11-02"})
    assert r.status_code == 422, r.text
    assert r.json() == {
        "code": "validation_error",
        "message": "The request is not valid; see details.",
        "details": [
            {"field": "query.granularity", "message": "must be one of: hour, day", "allowed": ["hour", "day"]}
        ],
    }
