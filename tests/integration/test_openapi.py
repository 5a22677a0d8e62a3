"""The OpenAPI document the app serves is valid, complete and says what the server does.

Every route (fast-path ones included) is documented with a summary, a description, a tag, an
operationId, its security and the ``Error`` body for every error status it lists. Whether the answers
really match is schemathesis' job (``test_schemathesis.py``).
"""

from __future__ import annotations

import re
from typing import Any

from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate

from corp_astro import DOMAINS
from kernel.app import domain_modules
from kernel.openapi import merge_operations

_METHODS = {"get", "put", "post", "patch", "delete"}
_PUBLIC = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/register"),
    ("POST", "/v1/auth/refresh"),
    # No credential scheme: the body is signed with the workflow's secret (Standard Webhooks headers).
    ("POST", "/v1/workflows/{workflow_id}/trigger"),
}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in _METHODS
    ]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = spec["components"][section][name]
    return node


async def _spec(client: AsyncTestClient[Any]) -> dict[str, Any]:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    spec: dict[str, Any] = r.json()
    return spec


async def test_the_spec_is_valid_openapi(client: AsyncTestClient[Any]) -> None:
    spec = await _spec(client)
    validate(spec)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["bearerAuth"]["bearerFormat"] == "JWT"
    assert schemes["writeKey"] == {**schemes["writeKey"], "type": "http", "scheme": "basic"}
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message"]
    assert set(error["properties"]) == {"code", "message", "details"}
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"field", "message", "allowed"}


async def test_every_route_is_documented(client: AsyncTestClient[Any]) -> None:
    spec = await _spec(client)
    documented = {(m, p) for m, p, _ in _operations(spec)}
    app = client.app
    served = {
        (method.upper(), route.path_format.rstrip("/") or "/")
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method, (handler, _) in route.route_handler_map.items()
        if handler.resolve_include_in_schema() and method in {m.upper() for m in _METHODS}
    }
    assert served - documented == set()
    # Every domain's declaration (its openapi.py) names an operation that exists.
    declared = merge_operations(domain_modules(DOMAINS, "openapi"))
    assert set(declared) - {f"{m} {p}" for m, p in documented} == set()
    assert len(documented) >= 69  # a floor: the real check is the line above
    # The fast path's routes answer before Litestar's routing: each must match a documented operation.
    fast = app.fast
    assert fast is not None
    for method, pattern, _ in fast._routes:
        samples = [re.sub(r"{[^}]+}", "x1", p) for m, p in documented if m == method]
        assert any(pattern.fullmatch(s) for s in samples), pattern.pattern


async def test_every_operation_is_described_secured_and_lists_its_errors(
    client: AsyncTestClient[Any],
) -> None:
    spec = await _spec(client)
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    for method, path, op in _operations(spec):
        where = f"{method} {path}"
        assert op.get("summary", "").strip(), where
        assert op.get("description", "").strip(), where
        assert "`" not in op["summary"], where
        assert op.get("tags"), where
        assert "security" in op, where
        schemes = {name for requirement in op["security"] for name in requirement}
        if (method, path) in _PUBLIC:
            assert schemes == set(), where
        else:
            assert schemes, where
            assert schemes <= {"bearerAuth", "writeKey"}, where
        statuses = {int(s) for s in op["responses"]}
        assert any(200 <= s < 300 for s in statuses), where
        assert {400, 408, 429, 431, 503} <= statuses, where
        if schemes:
            assert 401 in statuses, where
        if "{" in path:
            assert 404 in statuses, where
        if "requestBody" in op:
            assert {413, 422} & statuses, where
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (where, status)
            if int(status) in (429, 503):
                assert "Retry-After" in response["headers"], (where, status)


async def test_real_bodies_and_statuses(client: AsyncTestClient[Any]) -> None:
    spec = await _spec(client)
    paths = spec["paths"]
    # Exports answer 202, not Litestar's default 201 for a POST.
    assert "202" in paths["/v1/exports"]["post"]["responses"]
    assert "201" not in paths["/v1/exports"]["post"]["responses"]
    # The ingest routes: Segment's batch and messages in, the collector's answer out.
    batch = paths["/v1/batch"]["post"]
    body = _resolve(spec, batch["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["batch"]
    message = body["properties"]["batch"]["items"]
    assert {"userId", "anonymousId", "event", "properties", "context", "timestamp"} <= set(
        message["properties"]
    )
    ok = _resolve(spec, batch["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(ok["required"]) == {"success", "accepted", "duplicates", "rejected"}
    for call in ("track", "identify", "page", "screen", "group", "alias"):
        op = paths[f"/v1/{call}"]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["type"]["enum"] == [call]
        assert op["security"] == [{"writeKey": []}]
    # Assignments and conversions: {user_id} in, by an app's write key or a user's token.
    for action, out in (("assignments", "AssignmentOut"), ("conversions", "ConversionOut")):
        op = paths[f"/v1/experiments/{{name}}/{action}"]["post"]
        body = _resolve(spec, op["requestBody"]["content"]["application/json"]["schema"])
        assert "user_id" in body["properties"]
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(out)
        assert op["security"] == [{"writeKey": []}, {"bearerAuth": []}]
    for method, path in (("post", "/v1/experiments"), ("patch", "/v1/experiments/{name}")):
        assert "requestBody" in paths[path][method], path
    results = paths["/v1/experiments/{name}/results"]["get"]["responses"]["200"]
    results_schema = _resolve(spec, results["content"]["application/json"]["schema"])
    assert {"variants", "comparisons", "srm", "power"} <= set(results_schema["properties"])
    download = paths["/v1/exports/{export_id}/download"]["get"]["responses"]["200"]["content"]
    assert list(download) == ["application/vnd.apache.parquet"]


async def test_every_list_is_items_and_next_cursor(client: AsyncTestClient[Any]) -> None:
    spec = await _spec(client)
    lists = 0
    for method, path, op in _operations(spec):
        names = {p["name"] for p in op.get("parameters", [])}
        if method != "GET" or not {"cursor", "limit"} <= names:
            continue
        lists += 1
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        page = _resolve(spec, ok)
        assert set(page["properties"]) == {"items", "next_cursor"}, path
        assert page["properties"]["items"]["type"] == "array", path
    assert lists >= 12


async def test_swagger_ui_embeds_the_completed_document(client: AsyncTestClient[Any]) -> None:
    """Swagger UI renders the document inline: it must be the completed one (security, Error bodies)."""
    page = (await client.get("/schema")).text
    assert '"bearerAuth"' in page
    assert '"writeKey"' in page
    assert '"#/components/schemas/Error"' in page
