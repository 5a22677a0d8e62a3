"""The one place where errors become HTTP responses: ``{"code", "message"[, "details"]}`` always."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState

from kernel import problems
from kernel.db import DB_UNAVAILABLE
from kernel.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DomainError,
    InvalidJsonError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
    problem,
)

__all__ = ["error_response", "exception_handlers", "response_for"]

_log = logging.getLogger("corp_astro.errors")

_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (BadRequestError, 400),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (ValidationError, 422),
    (RateLimitedError, 429),
    (UnavailableError, 503),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """Build the JSON error body every client (and every SDK) can parse; ``details`` is a list of
    ``{field, message}`` or absent."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)


# The categories whose every error answers one code, whatever a subclass calls itself (docs/errors.md).
_CATEGORY_CODE: tuple[tuple[type[DomainError], str], ...] = (
    (ValidationError, "validation_error"),
    (PayloadTooLargeError, "payload_too_large"),
)

_MISSING = re.compile(r"Missing required (?P<source>\w+) parameter '(?P<name>[^']+)'")


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
    code = next((c for cls, c in _CATEGORY_CODE if isinstance(exc, cls)), exc.code)
    headers = None
    if isinstance(exc, RateLimitedError | UnavailableError):
        headers = {"Retry-After": str(max(1, int(exc.retry_after)))}
    return error_response(status, code, exc.message, details=exc.details or None, headers=headers)


def _parameters(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The route handler's parameters (``FieldDefinition`` by name), to name fields as the client does."""
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    return dict(getattr(signature, "parameters", {}))


def _param_field(params: dict[str, Any], key: str, source: Any) -> tuple[str, Any]:
    """``query.from`` (the name the client sent, not the handler's) and the parameter's type."""
    source = str(getattr(source, "value", source) or "query")
    definition = params.get(key)
    kwarg = getattr(definition, "kwarg_definition", None)
    alias = getattr(kwarg, source, None) if source in ("query", "header", "cookie") else None
    return f"{source}.{alias or key}", getattr(definition, "annotation", None)


def _body_problem(request: Request[Any, Any, Any], type_: Any, message: str) -> Any:
    """The ``data`` body's problem: its decoded JSON converted again, for msgspec's path into it.

    Litestar's own ``key`` for a body field cannot be trusted: it strips every ``data.`` from the path,
    so a field named ``data`` reads as the whole body.
    """
    value = ScopeState.from_scope(request.scope).json
    if value is Empty or type_ is None:
        headers = request.headers
        if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
            return InvalidJsonError("is empty")  # Litestar reports a missing body as a missing ``data``
        return problem("body", message)  # not a JSON body (a form's, say)
    try:
        msgspec.convert(value, type_, strict=False, str_keys=True)
    except msgspec.ValidationError as exc:
        message, path = problems.split(str(exc))
        if not path and message.startswith("Expected "):
            return InvalidJsonError(message)
        return problems.field_problem("body", path, message, type_)
    return problem("body", message)


def _from_litestar(request: Request[Any, Any, Any], exc: ValidationException) -> DomainError:
    """Litestar's ``extra`` (a list of ``{message, key, source}``; sometimes absent) in the one shape."""
    extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if isinstance(exc.extra, dict) else []
    params = _parameters(request)
    details: list[Any] = []
    for item in extra:
        if not isinstance(item, dict) or "message" not in item:
            continue
        key, message, source = str(item.get("key", "")), str(item["message"]), item.get("source")
        if key == "data" or str(getattr(source, "value", source)) == "body":
            found = _body_problem(request, getattr(params.get("data"), "annotation", None), message)
            if isinstance(found, InvalidJsonError):
                return found
            details.append(found)
        else:
            field, type_ = _param_field(params, key, source)
            details.append(problems.param_problem(field, message, type_))
    if not details and (missing := _MISSING.search(str(exc.detail))):
        details.append(problem(f"{missing['source']}.{missing['name']}", "is required"))
    return problems.validation_error(details)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    return _domain(request, _from_litestar(request, exc))


def _too_large(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    """Litestar's own body limit (``request_max_body_size``), stated like every other 413."""
    resolve = getattr(request.scope.get("route_handler"), "resolve_request_max_body_size", None)
    limit = resolve() if resolve is not None else None
    if not limit:
        return error_response(413, "payload_too_large", "The request body is too large.")
    return _domain(request, PayloadTooLargeError(limit))


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status == 413:
        return _too_large(request, exc)
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        # Litestar could not decode a ``data`` body: the same 400 as every other route's.
        return _domain(request, problems.not_json(None, exc.__cause__))
    code = _HTTP_CODES.get(status, "error")
    message = exc.detail if status < 500 else "The server could not handle the request."
    return error_response(status, code, message, headers=exc.headers)


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    return _domain(request, problems.not_json(None, exc))


def _not_utf8(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    # msgspec raises this (not a DecodeError) for some bytes that are not UTF-8.
    return _domain(request, problems.not_json(None, exc))


def _refused_value(request: Request[Any, Any, Any], exc: asyncpg.DataError) -> Response[dict[str, Any]]:
    # Input checks should have caught this; answering 422 keeps a missed case a client error.
    return error_response(422, "validation_error", "A value is not acceptable to the database.")


def _retry(
    request: Request[Any, Any, Any], exc: asyncpg.TransactionRollbackError
) -> Response[dict[str, Any]]:
    # A deadlock or serialization failure: the transaction was rolled back, so a retry is safe.
    return error_response(
        503,
        "unavailable",
        "A concurrent change got in the way; nothing was saved. Retry.",
        headers={"Retry-After": "1"},
    )


def _constraint(
    request: Request[Any, Any, Any], exc: asyncpg.IntegrityConstraintViolationError
) -> Response[dict[str, Any]]:
    # E.g. a parent row deleted by a concurrent request between a check and an insert.
    return error_response(409, "conflict", "The request conflicts with the current state; retry it.")


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, DB_UNAVAILABLE):
        _log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            503,
            "unavailable",
            "The database is unavailable; nothing was committed. Retry later.",
            headers={"Retry-After": "2"},
        )
    _log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error.")


exception_handlers: dict[Any, Any] = {
    DomainError: _domain,
    ValidationException: _validation,
    HTTPException: _http,
    RecursionError: _too_deep,
    UnicodeDecodeError: _not_utf8,
    asyncpg.DataError: _refused_value,
    asyncpg.IntegrityConstraintViolationError: _constraint,
    asyncpg.TransactionRollbackError: _retry,
    Exception: _unhandled,
}


def response_for(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The response ``exception_handlers`` gives ``exc``, for code that runs outside Litestar's routing."""
    for cls in type(exc).__mro__:
        handler = exception_handlers.get(cls)
        if handler is not None:
            response: Response[Any] = handler(request, exc)
            return response
    return _unhandled(request, exc)
