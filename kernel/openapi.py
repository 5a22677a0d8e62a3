"""The OpenAPI document, completed: what Litestar cannot see in the handlers is added here, once.

Litestar builds the paths from the handlers' signatures. Several handlers read their own body (to keep
the error contract's 400/422 split, or to stream it under a limit), several answer through a fast path,
and none of them says which errors it can answer. ``complete`` therefore post-processes the generated
document, in one place:

- every operation gets a summary and a description (the handler's docstring: first line and the rest);
- a domain's ``openapi`` module may declare, per ``"METHOD /path"``, a request body, a success response,
  the security schemes and the extra errors (``Operation``); a type is turned into JSON Schema by msgspec;
- security: ``bearerAuth`` (a user's JWT access token) and ``writeKey`` (an app's write key as the HTTP
  Basic username, as Segment SDKs send it); an operation whose handler takes ``current_user`` needs a
  Bearer token unless its domain says otherwise, and the rest are public;
- errors: every operation documents the ``Error`` body for each status it can answer, derived from what
  it does (credentials: 401/403; a path parameter: 404; a body: 413/422; parameters: 422; 400 for a body
  that is not JSON and for a request the server cannot parse; 408, 429, 431 and 503 from the server
  layer and the database) plus the statuses its domain declares (409, 429 ...).

The result is the dict served at ``/schema/openapi.json`` and embedded in the Swagger UI page.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute

__all__ = ["ERROR_SCHEMA", "Operation", "complete", "merge_operations"]

_log = logging.getLogger("corp_astro.openapi")
_REF = "#/components/schemas/{name}"
_CODE = re.compile(r"``([^`]*)``")
_BEARER = "bearerAuth"
_WRITE_KEY = "writeKey"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer: a stable `code`, a human `message` and, for validation, `details`.",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "Stable, machine-readable (e.g. `validation_error`)."},
        "message": {"type": "string", "description": "For people; may change."},
        "details": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorDetail"}},
    },
}
_ERROR_DETAIL: dict[str, Any] = {
    "type": "object",
    "required": ["field", "message"],
    "properties": {
        "field": {"type": "string", "description": "The offending field (a dotted path, or the parameter)."},
        "message": {"type": "string"},
        "allowed": {"type": "array", "items": {"type": "string"}, "description": "The accepted values."},
    },
}
_SECURITY_SCHEMES: dict[str, Any] = {
    _BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A user's access token from `POST /v1/auth/login` or `POST /v1/auth/refresh`.",
    },
    _WRITE_KEY: {
        "type": "http",
        "scheme": "basic",
        "description": "An app's write key (`corp-astro keys create`) as the HTTP Basic username with an "
        "empty password, as Segment SDKs send it (ingest also reads `writeKey` from the body).",
    },
}

# Status -> (the code(s) answered, when). Every one is the ``Error`` body.
_ERRORS: dict[int, str] = {
    400: "`invalid_json`: the body is not JSON; `bad_request`: the request cannot be read (a malformed "
    "request line or header, a corrupt cursor or body encoding).",
    401: "`unauthorized`: credentials are missing, invalid, expired or revoked.",
    403: "`forbidden`: the credentials are valid but the caller's role does not allow this.",
    404: "`not_found`: no such resource, or it is not the caller's (the same answer for both).",
    408: "The request head or body did not arrive in time (from the server layer).",
    409: "`conflict` (or a more specific code): the request conflicts with the current state.",
    413: "`payload_too_large`: the body is over the route's limit, which the message states.",
    422: "`validation_error`: well-formed, but a value is not acceptable; `details` names each field.",
    429: "`rate_limited`: too many attempts or connections; retry after `Retry-After` seconds.",
    431: "The request head is over 64 KB (from the server layer).",
    503: "`unavailable`: nothing was done (the database is unreachable, a queue is full, or the server is "
    "at its connection limit); retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
_SUCCESS = {200: "OK.", 201: "Created.", 202: "Accepted; it runs in the background.", 204: "No content."}
# What any request can be answered by the server layer or the database, whatever the route.
_ALWAYS = (400, 408, 429, 431, 503)


@dataclass(frozen=True, slots=True)
class Operation:
    """What a domain declares about one operation that its handler's signature does not show.

    ``summary``: when the handler's docstring does not make one; ``body``/``response``: a type (a msgspec
    Struct ...) or a JSON Schema dict, ``media_type`` the response's; ``status``: the success
    status when it is not the handler's, ``also``: other success statuses with the same body; ``security``: the schemes accepted (any one of them), ``()`` for
    a public route, None to derive it; ``errors``: statuses beyond the derived ones; ``without``: derived
    statuses the route never answers (ingest never answers 409: a message sent twice is a duplicate).
    """

    summary: str | None = None
    body: Any = None
    body_required: bool = True
    response: Any = None
    media_type: str = "application/json"
    status: int | None = None
    also: tuple[int, ...] = ()
    security: tuple[str, ...] | None = None
    errors: tuple[int, ...] = ()
    without: tuple[int, ...] = ()


_STATUS_OK: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok"]}},
}
_READY: dict[str, Any] = {
    "type": "object",
    "required": ["status", "revision"],
    "properties": {
        "status": {"type": "string", "enum": ["ready"]},
        "revision": {"type": "array", "items": {"type": "string"}, "description": "The schema's heads."},
    },
}
# The kernel's own routes (kernel.health). /ready's 503 is the Error body with `database_unavailable`
# or `migrations_pending`.
_KERNEL: dict[str, Operation] = {
    "GET /health": Operation(summary="Liveness: the process answers", response=_STATUS_OK),
    "GET /ready": Operation(
        summary="Readiness: the database answers and its schema is current", response=_READY
    ),
}


def merge_operations(modules: Iterable[Any]) -> dict[str, Operation]:
    """The kernel's declarations and the ``operations`` of each domain's ``openapi`` module, in one."""
    merged: dict[str, Operation] = dict(_KERNEL)
    for module in modules:
        merged.update(getattr(module, "operations", {}))
    return merged


_DECIMAL = {"type": "string", "format": "decimal"}


def _numbers_too(node: Any) -> Any:
    """msgspec documents a Decimal as a string, but decodes a JSON number as well (``50``, ``33.33``)."""
    if node == _DECIMAL:
        return {"anyOf": [{"type": "number"}, _DECIMAL]}
    if isinstance(node, dict):
        return {key: _numbers_too(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_numbers_too(value) for value in node]
    return node


def _schema_of(kind: Any, components: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema dict as is; a type through msgspec, its named parts added to ``components``."""
    if isinstance(kind, dict):
        return kind
    (schema,), parts = msgspec.json.schema_components((kind,), ref_template=_REF)
    for name, part in parts.items():
        components.setdefault(name, _numbers_too(part))
    return dict(_numbers_too(schema))


def _handlers(app: Litestar) -> dict[tuple[str, str], Any]:
    """``(METHOD, path)`` -> the route handler, for every documented route."""
    found: dict[tuple[str, str], Any] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method, (handler, _) in route.route_handler_map.items():
                found[(method.upper(), route.path_format.rstrip("/") or "/")] = handler
    return found


def _describe(op: dict[str, Any], handler: Any, summary: str | None) -> None:
    """Summary: declared, the handler's own, else its docstring's first sentence (up to a semicolon,
    code marks dropped); description: the docstring."""
    doc = inspect.cleandoc(getattr(handler.fn, "__doc__", None) or "")
    if summary:
        op["summary"] = summary
    elif not handler.summary and doc:
        first = _CODE.sub(r"\1", " ".join(doc.partition("\n\n")[0].split()))
        op["summary"] = first.split(". ")[0].split("; ")[0].rstrip(" .,:")
    op["description"] = op.get("description") or doc or op.get("summary", "")


def _needs_bearer(handler: Any) -> bool:
    return "current_user" in handler.parsed_fn_signature.parameters


def _error_statuses(
    method: str, op: dict[str, Any], security: tuple[str, ...], has_body: bool, decl: Operation
) -> set[int]:
    params = op.get("parameters") or []
    statuses = set(_ALWAYS) | set(decl.errors)
    if method != "get":
        statuses.add(409)  # a write that meets a concurrent one (a constraint) is a 409, never a 500
    if security:
        statuses.add(401)
    if _BEARER in security:
        statuses.add(403)
    # A path's id that names nothing (or someone else's), and an admin's ``?user_id=`` of no account.
    if any(p.get("in") == "path" or p.get("name") == "user_id" for p in params):
        statuses.add(404)
    if has_body:
        statuses |= {413, 422}
    if any(p.get("in") in ("path", "query") for p in params):
        statuses.add(422)
    return statuses - set(decl.without)


def _error_response(status: int, limit: int | None) -> dict[str, Any]:
    description = _ERRORS[status]
    if status == 413 and limit:
        description += f" This route's limit: {limit:,} bytes."
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in (429, 503):
        out["headers"] = _RETRY_AFTER
    return out


def _success(op: dict[str, Any], decl: Operation, components: dict[str, Any]) -> None:
    responses: dict[str, Any] = op["responses"]
    ok = [s for s in responses if s.startswith("2")]
    if decl.status is not None and ok and str(decl.status) not in responses:
        responses[str(decl.status)] = responses.pop(ok[0])
        ok = [str(decl.status)]
    if decl.response is not None and ok:
        content = {decl.media_type: {"schema": _schema_of(decl.response, components)}}
        responses[ok[0]] = {**responses[ok[0]], "content": content}
    for status in decl.also:
        responses[str(status)] = {**responses[ok[0]], "description": _SUCCESS.get(status, "Success.")}


def _complete_operation(
    method: str, op: dict[str, Any], handler: Any, decl: Operation, components: dict[str, Any]
) -> None:
    _describe(op, handler, decl.summary)
    if decl.body is not None:
        op["requestBody"] = {
            "required": decl.body_required,
            "content": {"application/json": {"schema": _schema_of(decl.body, components)}},
        }
    _success(op, decl, components)
    security = decl.security
    if security is None:
        security = (_BEARER,) if _needs_bearer(handler) else ()
    op["security"] = [{name: []} for name in security]
    has_body = "requestBody" in op
    responses: dict[str, Any] = op["responses"]
    # Litestar documents its own error shape ({status_code, detail, extra}), which is never sent.
    for litestar_error in [s for s in responses if s[0] in "45"]:
        del responses[litestar_error]
    limit = handler.resolve_request_max_body_size() if has_body else None
    for status in sorted(_error_statuses(method, op, security, has_body, decl)):
        responses[str(status)] = _error_response(status, limit)


def complete(schema: dict[str, Any], app: Litestar, declared: Mapping[str, Operation]) -> dict[str, Any]:
    """Complete Litestar's ``schema`` (in place, once) with what ``app``'s handlers and ``declared`` say."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    if "Error" in schemas:
        return schema
    handlers = _handlers(app)
    unknown = set(declared)
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            key = f"{method.upper()} {path}"
            unknown.discard(key)
            handler = handlers.get((method.upper(), path.rstrip("/") or "/"))
            if handler is not None:
                _complete_operation(method, op, handler, declared.get(key, Operation()), schemas)
    if unknown:
        # The document is still served (a 500 here would take Swagger UI down); test_openapi fails on it.
        _log.warning("OpenAPI declarations for operations that do not exist: %s", sorted(unknown))
    schemas["ErrorDetail"] = _ERROR_DETAIL
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = _SECURITY_SCHEMES
    return schema
