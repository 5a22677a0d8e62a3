"""Domain error categories. They carry no HTTP knowledge: ``kernel.http_errors`` maps them once.

A domain raises a subclass of one of these categories (``class ExperimentNotFound(NotFoundError)``),
with a message that names the thing concerned. ``details``, when given, is a list of per-field problems
(:func:`problem`): ``{"field": "body.variants[1].weight", "message": "..."}``. The wire contract is
written down in ``docs/errors.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DomainError",
    "InvalidJsonError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Problem",
    "RateLimitedError",
    "UnavailableError",
    "ValidationError",
    "problem",
    "size_limit",
]

# One per-field problem: ``field`` is a path (``body.variants[1].weight``, ``query.granularity``,
# ``header.Authorization``) and ``message`` says what is wrong; extra keys only where docs/errors.md says.
Problem = dict[str, Any]


def problem(field: str, message: str, **extra: Any) -> Problem:
    """A ``details`` item."""
    return {"field": field, "message": message, **extra}


def size_limit(limit: int, unit: str = "bytes") -> str:
    """``the 64 KB limit (65536 bytes)``, or ``the limit of 500 events`` when not a whole KB count."""
    if unit == "bytes" and limit >= 1024 and limit % 1024 == 0:
        whole = f"{limit // 1048576} MB" if limit % 1048576 == 0 else f"{limit // 1024} KB"
        return f"the {whole} limit ({limit} bytes)"
    return f"the limit of {limit} {unit}"


class DomainError(Exception):
    """Base of every error a client can cause or must be told about."""

    code = "error"

    def __init__(
        self, message: str, *, code: str | None = None, details: list[Problem] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class BadRequestError(DomainError):
    """The request cannot be read (corrupt body, wrong encoding)."""

    code = "bad_request"


class InvalidJsonError(BadRequestError):
    """The body is not a JSON object: malformed, not UTF-8, nested too deeply, empty or another type.

    Every route answers these the same way (400 ``invalid_json``); ``reason`` says which it was.
    """

    code = "invalid_json"

    def __init__(self, reason: str) -> None:
        super().__init__("The request body is not a valid JSON object.", details=[problem("body", reason)])


class ValidationError(DomainError):
    """The request is well formed but its values are not acceptable (every one answers 422
    ``validation_error``; say which field in ``details``)."""

    code = "validation_error"


class AuthenticationError(DomainError):
    """No valid credentials."""

    code = "unauthorized"


class PermissionDeniedError(DomainError):
    """Valid credentials without the needed role."""

    code = "forbidden"


class NotFoundError(DomainError):
    """The thing does not exist, or belongs to someone else (never reveal which)."""

    code = "not_found"


class ConflictError(DomainError):
    """The request conflicts with the current state (duplicates, wrong lifecycle state)."""

    code = "conflict"


class PayloadTooLargeError(DomainError):
    """The body or one of its parts is over a size limit; the message and ``details`` state the limit."""

    code = "payload_too_large"

    def __init__(
        self, limit: int, *, subject: str = "The request body", field: str = "body", unit: str = "bytes"
    ) -> None:
        super().__init__(
            f"{subject} is over {size_limit(limit, unit)}.",
            details=[problem(field, f"at most {limit} {unit}")],
        )
        self.limit = limit


class RateLimitedError(DomainError):
    """Too many attempts; retry after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: int, code: str | None = None, details: list[Problem] | None = None
    ):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


class UnavailableError(DomainError):
    """Nothing was committed; the client should retry after ``retry_after`` seconds."""

    code = "unavailable"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 1,
        code: str | None = None,
        details: list[Problem] | None = None,
    ):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
