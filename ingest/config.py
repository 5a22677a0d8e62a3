"""Ingest knobs, read once from ``CORP_ASTRO_INGEST_*`` environment variables (README, "Ingest")."""

from __future__ import annotations

from dataclasses import dataclass

from kernel.settings import env_float, env_int

__all__ = ["IngestConfig"]


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Limits of the wire protocol and the group-commit pipeline."""

    # Segment's limits: 500 KB per request (compressed on the wire and decompressed), 32 KB per event.
    max_body_bytes: int = 500 * 1024
    max_event_bytes: int = 32 * 1024
    max_batch_events: int = 2_500
    # Client clocks further ahead than this are clamped to the receive time (PostHog uses 1 h too).
    max_future_seconds: float = 3_600.0
    # Events before the first day of the month this many months back are rejected (timestamp_out_of_range).
    # Defaults to the raw retention window (CORP_ASTRO_RETENTION_RAW_MONTHS): docs/event-time-window.md.
    max_past_months: int = 24
    # A flush takes whole requests until it holds this many events...
    flush_max_events: int = 2_000
    # ...or this long after the first one arrived, so concurrent requests share one COPY transaction.
    flush_linger_ms: float = 2.0
    # Flushes running at once, each on its own pooled connection.
    flushers: int = 2
    # Events accepted into memory but not yet committed; past this a request gets 503 at once.
    max_pending_events: int = 4_000
    # A request waits this long for its commit before answering 503 (the retry is deduplicated).
    ack_timeout_seconds: float = 10.0
    # Per statement of a flush; a hung database turns into 503s rather than a growing queue.
    flush_timeout_seconds: float = 10.0
    retry_after_seconds: int = 1
    # How long a messageId is remembered for exactly-once (Segment: >= 24 h; Amplitude: 7 days).
    dedupe_days: int = 7

    def __post_init__(self) -> None:
        if self.max_past_months < 0 or self.max_future_seconds < 0:
            raise ValueError("the event-time window must not be negative")

    @classmethod
    def from_env(cls) -> IngestConfig:
        """Defaults overridden by ``CORP_ASTRO_INGEST_<FIELD>`` (upper case)."""
        d = cls()
        return cls(
            max_body_bytes=env_int("CORP_ASTRO_INGEST_MAX_BODY_BYTES", d.max_body_bytes),
            max_event_bytes=env_int("CORP_ASTRO_INGEST_MAX_EVENT_BYTES", d.max_event_bytes),
            max_batch_events=env_int("CORP_ASTRO_INGEST_MAX_BATCH_EVENTS", d.max_batch_events),
            max_future_seconds=env_float("CORP_ASTRO_INGEST_MAX_FUTURE_SECONDS", d.max_future_seconds),
            max_past_months=env_int(
                "CORP_ASTRO_INGEST_MAX_PAST_MONTHS",
                # The variable retention.schemas.RetentionPolicy reads, so the two windows agree by default.
                env_int("CORP_ASTRO_RETENTION_RAW_MONTHS", d.max_past_months),
            ),
            flush_max_events=env_int("CORP_ASTRO_INGEST_FLUSH_MAX_EVENTS", d.flush_max_events),
            flush_linger_ms=env_float("CORP_ASTRO_INGEST_FLUSH_LINGER_MS", d.flush_linger_ms),
            flushers=env_int("CORP_ASTRO_INGEST_FLUSHERS", d.flushers),
            max_pending_events=env_int("CORP_ASTRO_INGEST_MAX_PENDING_EVENTS", d.max_pending_events),
            ack_timeout_seconds=env_float("CORP_ASTRO_INGEST_ACK_TIMEOUT_SECONDS", d.ack_timeout_seconds),
            flush_timeout_seconds=env_float(
                "CORP_ASTRO_INGEST_FLUSH_TIMEOUT_SECONDS", d.flush_timeout_seconds
            ),
            retry_after_seconds=env_int("CORP_ASTRO_INGEST_RETRY_AFTER_SECONDS", d.retry_after_seconds),
            dedupe_days=env_int("CORP_ASTRO_INGEST_DEDUPE_DAYS", d.dedupe_days),
        )
