"""Errors of workflows (``kernel.http_errors`` maps their categories to statuses)."""

from __future__ import annotations

from kernel.errors import AuthenticationError, ConflictError, NotFoundError

__all__ = [
    "ExecutionNotCancellableError",
    "ExecutionNotFoundError",
    "ExecutionNotRetryableError",
    "InvalidTriggerSignatureError",
    "WorkflowNotActiveError",
    "WorkflowNotFoundError",
]


class WorkflowNotFoundError(NotFoundError):
    """No such workflow."""

    code = "not_found"


class ExecutionNotFoundError(NotFoundError):
    """No such workflow execution."""

    code = "not_found"


class ExecutionNotCancellableError(ConflictError):
    """The execution already ended (completed, failed or cancelled)."""

    code = "execution_not_cancellable"


class ExecutionNotRetryableError(ConflictError):
    """Only a failed execution can be retried."""

    code = "execution_not_retryable"


class WorkflowNotActiveError(ConflictError):
    """The workflow is paused or archived: it starts no execution."""

    code = "workflow_not_active"


class InvalidTriggerSignatureError(AuthenticationError):
    """The inbound trigger's ``webhook-signature`` is missing, stale or wrong."""

    code = "invalid_signature"
