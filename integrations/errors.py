"""Errors of the integrations domain."""

from __future__ import annotations

from kernel.errors import ConflictError, NotFoundError

__all__ = [
    "DeliveryNotFoundError",
    "DeliveryNotRetryableError",
    "WebhookDisabledError",
    "WebhookNotFoundError",
]


class WebhookNotFoundError(NotFoundError):
    """No such webhook endpoint."""

    code = "webhook_not_found"


class DeliveryNotFoundError(NotFoundError):
    """No such delivery of this endpoint."""

    code = "delivery_not_found"


class DeliveryNotRetryableError(ConflictError):
    """The delivery is still waiting or being attempted: it cannot be queued again."""

    code = "delivery_not_retryable"


class WebhookDisabledError(ConflictError):
    """The endpoint is disabled: re-enable it (PATCH status=active) first."""

    code = "webhook_disabled"
