"""Ingest's domain errors; ``kernel.http_errors`` turns each category into its HTTP status."""

from __future__ import annotations

from typing import Any

from kernel.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
    problem,
)

__all__ = [
    "AllEventsRejected",
    "BodyTooLarge",
    "CorruptBody",
    "IngestOverloaded",
    "SourceNotFound",
    "TooManyEvents",
    "UnsupportedEncoding",
]


class BodyTooLarge(PayloadTooLargeError):
    """The request body (on the wire or decompressed) or a part of it is over its limit (413
    ``payload_too_large``, stating the limit)."""


class TooManyEvents(PayloadTooLargeError):
    """A batch holds more events than Segment's per-batch limit (413 ``payload_too_large``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit, subject="The batch", field="body.batch", unit="events")


class CorruptBody(BadRequestError):
    """The gzip body cannot be inflated (400 ``invalid_gzip``)."""

    code = "invalid_gzip"

    def __init__(self, reason: str) -> None:
        super().__init__("The request body is not valid gzip.", details=[problem("body", reason)])


class UnsupportedEncoding(BadRequestError):
    """A Content-Encoding other than gzip or identity."""

    code = "unsupported_content_encoding"

    def __init__(self, encoding: str) -> None:
        allowed = ["gzip", "identity"]
        super().__init__(
            f"Content-Encoding {encoding[:40]!r} is not supported; use gzip or none.",
            details=[problem("header.Content-Encoding", "must be one of: gzip, identity", allowed=allowed)],
        )


class AllEventsRejected(BadRequestError):
    """Every event of the request is invalid (400 ``invalid_events``): ``details`` has one item per event,
    ``{"field": "body.batch[3]", "message", "index", "messageId", "reason"}``."""

    code = "invalid_events"

    def __init__(self, rejected: list[dict[str, Any]], *, batch: bool) -> None:
        details = [
            problem(
                f"body.batch[{r['index']}]" if batch else "body",
                str(r["reason"]).replace("_", " "),
                index=r["index"],
                messageId=r["messageId"],
                reason=r["reason"],
            )
            for r in rejected
        ]
        super().__init__("Every event in the request was rejected; nothing was stored.", details=details)


class IngestOverloaded(UnavailableError):
    """Nothing was committed (queue full, database down or slow); retry after ``retry_after`` seconds."""

    code = "unavailable"


class SourceNotFound(NotFoundError):
    """No event source with that id."""

    code = "source_not_found"
