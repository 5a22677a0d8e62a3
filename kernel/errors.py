"""Domain error categories. They carry no HTTP knowledge: ``kernel.http_errors`` maps them once.

A domain raises a subclass of one of these categories (``class ExperimentNotFound(NotFoundError)``),
with a message that names the thing concerned.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DomainError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "UnavailableError",
    "ValidationError",
]


class DomainError(Exception):
    """Base of every error a client can cause or must be told about."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class BadRequestError(DomainError):
    """The request cannot be read (corrupt body, wrong encoding)."""

    code = "bad_request"


class ValidationError(DomainError):
    """The request is well formed but its values are not acceptable."""

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
    """The body or one of its parts is over a size limit."""

    code = "payload_too_large"


class RateLimitedError(DomainError):
    """Too many attempts; retry after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, details: Any = None):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


class UnavailableError(DomainError):
    """Nothing was committed; the client should retry after ``retry_after`` seconds."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None, details: Any = None):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
