"""The one place where errors become HTTP responses: ``{"code", "message"[, "details"]}`` always."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from kernel.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DomainError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
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
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}

# Errors that mean "the database is unreachable right now": nothing was committed, retry later.
_DB_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.QueryCanceledError,
)


def error_response(
    status: int, code: str, message: str, *, details: Any = None, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    """Build the JSON error body every client (and every SDK) can parse."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
    headers = None
    if isinstance(exc, RateLimitedError | UnavailableError):
        headers = {"Retry-After": str(max(1, int(exc.retry_after)))}
    return error_response(status, exc.code, exc.message, details=exc.details, headers=headers)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    return error_response(400, "validation_error", "The request is not valid.", details=exc.extra or None)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "error")
    message = exc.detail if status < 500 else "The server could not handle the request."
    return error_response(status, code, message, details=exc.extra or None, headers=exc.headers)


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    return error_response(400, "bad_request", "The JSON document is nested too deeply.")


def _not_utf8(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    # msgspec raises this (not a DecodeError) for invalid UTF-8 inside a JSON string.
    return error_response(400, "bad_request", "The request body is not valid UTF-8.")


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
    if isinstance(exc, _DB_DOWN):
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
