"""Errors of the businesses domain."""

from __future__ import annotations

from kernel.errors import NotFoundError

__all__ = ["BusinessNotFoundError"]


class BusinessNotFoundError(NotFoundError):
    """No such business (or it belongs to someone else)."""

    code = "business_not_found"
