"""Ingest's domain errors; ``kernel.http_errors`` turns each category into its HTTP status."""

from __future__ import annotations

from typing import Any

from kernel.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
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
    """The request body (on the wire or decompressed) is over the limit."""

    code = "payload_too_large"


class TooManyEvents(PayloadTooLargeError):
    """A batch holds more events than Segment's per-batch limit."""

    code = "too_many_events"


class CorruptBody(BadRequestError):
    """The body is not valid gzip, JSON, or the expected envelope."""

    code = "invalid_body"


class UnsupportedEncoding(BadRequestError):
    """A Content-Encoding other than gzip or identity."""

    code = "unsupported_content_encoding"


class AllEventsRejected(BadRequestError):
    """Every event of the request is invalid; ``details.rejected`` says why, event by event."""

    code = "invalid_events"

    def __init__(self, rejected: list[dict[str, Any]]) -> None:
        super().__init__(
            "Every event in the request was rejected; nothing was stored.",
            details={"rejected": rejected},
        )


class IngestOverloaded(UnavailableError):
    """Nothing was committed (queue full, database down or slow); retry after ``retry_after`` seconds."""

    code = "unavailable"


class SourceNotFound(NotFoundError):
    """No event source with that id."""

    code = "source_not_found"
