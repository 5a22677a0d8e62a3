"""Ingest's metrics: events by outcome and rejection reason, flushes, the pending queue, 503s.

Recorded once per request or flush with counts (``record_request``, ``record_flush``), never once per
event: the hot path pays a few counter increments per request, however many events it carries.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from kernel import metrics

if TYPE_CHECKING:
    from litestar.datastructures import State

    from ingest.mapping import Rejection
    from kernel.metrics import MetricsRegistry

__all__ = ["record_flush", "record_request", "record_unavailable", "register_metrics"]

EVENTS = metrics.counter(
    "corp_astro_ingest_events_total",
    "Events by outcome: accepted (stored), rejected (invalid or refused by the database), duplicate.",
    ("outcome",),
)
REJECTED = metrics.counter(
    "corp_astro_ingest_rejected_events_total",
    "Rejected events by reason (the reason in the answer).",
    ("reason",),
)
FLUSH_EVENTS = metrics.histogram(
    "corp_astro_ingest_flush_events",
    "Events per group-commit flush (one COPY transaction).",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
FLUSH_SECONDS = metrics.histogram(
    "corp_astro_ingest_flush_duration_seconds",
    "Time of one group-commit flush, commit included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
PENDING = metrics.gauge(
    "corp_astro_ingest_pending_events", "Events accepted into memory and not yet resolved."
)
UNAVAILABLE = metrics.counter(
    "corp_astro_ingest_unavailable_total",
    "Ingest requests answered 503 by reason: overload (queue full), database, timeout, shutdown.",
    ("reason",),
)
_ACCEPTED, _DUPLICATE, _REJECTED = (EVENTS.labels(o) for o in ("accepted", "duplicate", "rejected"))
_reasons: dict[str, Any] = {}
_MAX_REASONS = 64


def record_request(accepted: int, duplicates: int, rejected: list[Rejection]) -> None:
    """One request's events: its counts added once each."""
    if accepted:
        _ACCEPTED.inc(accepted)
    if duplicates:
        _DUPLICATE.inc(duplicates)
    if rejected:
        _REJECTED.inc(len(rejected))
        for reason, n in Counter(r.reason for r in rejected).items():
            _reason_child(reason).inc(n)


def _reason_child(reason: str) -> Any:
    child = _reasons.get(reason)
    if child is None:
        # The reasons are the mapping's fixed codes; the guard keeps the label bounded whatever happens.
        if len(_reasons) >= _MAX_REASONS or not reason.isidentifier():
            reason = "other"
        child = _reasons[reason] = REJECTED.labels(reason)
    return child


def record_flush(events: int, seconds: float) -> None:
    """One committed flush."""
    FLUSH_EVENTS.observe(events)
    FLUSH_SECONDS.observe(seconds)


def record_unavailable(reason: str) -> None:
    """A request refused with 503."""
    UNAVAILABLE.labels(reason).inc()


def _pending(state: State) -> None:
    collector = getattr(state, "ingest", None)
    if collector is not None:
        PENDING.set(collector.pipeline.pending_events)


def register_metrics(registry: MetricsRegistry) -> None:
    """The pending queue, read from this process's pipeline."""
    registry.per_process(_pending)
