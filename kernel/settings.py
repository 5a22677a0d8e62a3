"""Process settings, read once from the environment.

Every knob has a safe default so that ``make run`` needs no configuration; ``DATABASE_URL`` switches
from the embedded PostgreSQL to any PostgreSQL >= 15.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from kernel.crypto import file_secret

S = TypeVar("S")

__all__ = [
    "LOG_FORMATS",
    "AccessLog",
    "AuthLimits",
    "IngestConfig",
    "RetentionPolicy",
    "ServerLimits",
    "Settings",
    "env_bool",
    "env_float",
    "env_int",
    "get_settings",
    "section_from_env",
]


def env_bool(name: str, default: bool) -> bool:
    """A boolean environment variable (1/true/yes/on), ``default`` when unset."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """An integer environment variable, ``default`` when unset or empty."""
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else int(raw)


def env_float(name: str, default: float) -> float:
    """A float environment variable, ``default`` when unset or empty."""
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else float(raw)


def section_from_env(
    cls: type[S],
    prefix: str,
    names: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> S:
    """A settings section (a dataclass of int and float fields): each field's default, overridden by the
    variable ``prefix`` + the field's name in upper case (or its name in ``names``), read as the type of
    its default."""
    names = names or {}
    base = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    base.update(defaults or {})
    values = {
        name: (env_float if isinstance(default, float) else env_int)(
            names.get(name, prefix + name.upper()), default
        )
        for name, default in base.items()
    }
    return cls(**values)


def _parse_networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """Throttles and the hashing pool of registration and login (README, "Accounts").

    Every counter backs off exponentially: once a key reaches its limit, each further attempt is
    refused until ``backoff_seconds`` (doubling per attempt, at most ``backoff_max_seconds``) have
    passed. Counters reset ``window_seconds`` after their first attempt unless a backoff is running.
    """

    account_ip_attempts: int = 5  # one account from one address (a user mistyping)
    ip_attempts: int = 30  # one address, any accounts (several people can share a NAT)
    account_lock_attempts: int = 100  # one account from every address: then locked, owner notified
    account_lock_seconds: int = 3600
    backoff_seconds: int = 60
    backoff_max_seconds: int = 3600
    window_seconds: int = 3600
    register_ip_attempts: int = 10  # registrations per address per window
    register_global_attempts: int = 600  # registrations in all per window
    hash_workers: int = 0  # argon2id hashes at once; 0 means the core count
    hash_queue: int = 32  # hashes waiting for a worker before new ones get 429
    refresh_ttl_seconds: int = 30 * 86_400  # a refresh token's lifetime (each refresh issues a new one)

    @classmethod
    def from_env(cls) -> AuthLimits:
        """Defaults overridden by ``CORP_ASTRO_AUTH_<FIELD>`` (upper case)."""
        return section_from_env(cls, "CORP_ASTRO_AUTH_")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client may make the HTTP server hold (docs/protocol-limits.md)."""

    max_head_bytes: int = 64 * 1024  # request line and headers, as sent
    head_timeout: float = 30.0  # the whole head, from the connection's start or the head's first byte
    read_timeout: float = 30.0  # the longest pause between two reads of a body
    body_timeout: float = 60.0  # the whole body, from the end of the head
    max_connections_per_ip: int = 64  # open at once from one address (IPv6: one /64)

    @classmethod
    def from_env(cls) -> ServerLimits:
        """Defaults overridden by ``CORP_ASTRO_<FIELD>`` (upper case)."""
        return section_from_env(cls, "CORP_ASTRO_")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The seed's policy by default: aggregate after 12 months, drop raw after 24, logs after 6."""

    aggregate_after_months: int = 12
    raw_retention_months: int = 24
    log_retention_months: int = 6
    premake_months: int = 3
    purge_batch_size: int = 5_000
    lock_timeout_ms: int = 2_000
    lock_retries: int = 8

    @classmethod
    def from_env(cls) -> RetentionPolicy:
        """Windows from ``CORP_ASTRO_RETENTION_*`` variables, else the seed's defaults."""
        return section_from_env(
            cls,
            "CORP_ASTRO_RETENTION_",
            names={
                "aggregate_after_months": "CORP_ASTRO_RETENTION_AGGREGATE_MONTHS",
                "raw_retention_months": "CORP_ASTRO_RETENTION_RAW_MONTHS",
                "log_retention_months": "CORP_ASTRO_RETENTION_LOG_MONTHS",
                "premake_months": "CORP_ASTRO_PARTITION_PREMAKE_MONTHS",
                "purge_batch_size": "CORP_ASTRO_RETENTION_PURGE_BATCH",
            },
        )

    def __post_init__(self) -> None:
        if self.raw_retention_months < self.aggregate_after_months:
            raise ValueError("raw data must be kept at least as long as the aggregation window")
        if min(self.aggregate_after_months, self.log_retention_months, self.premake_months) < 0:
            raise ValueError("retention windows must not be negative")


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
    # Flushes running at once per server, each on its own pooled connection, divided among the server's
    # worker processes (at least one each): N workers then write flushes as large as one process does,
    # rather than N times as many smaller ones (docs/ingest.md, "Several workers, several servers").
    flushers: int = 2
    # The server's worker processes: ``serve --workers N`` sets CORP_ASTRO_INGEST_WORKERS for them.
    workers: int = 1
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

    @property
    def process_flushers(self) -> int:
        """This process's share of the server's ``flushers`` (at least one)."""
        return max(1, -(-self.flushers // max(1, self.workers)))

    @classmethod
    def from_env(cls) -> IngestConfig:
        """Defaults overridden by ``CORP_ASTRO_INGEST_<FIELD>`` (upper case)."""
        # The past window defaults to retention's raw window, so the two agree unless told otherwise.
        raw_months = env_int("CORP_ASTRO_RETENTION_RAW_MONTHS", cls().max_past_months)
        return section_from_env(cls, "CORP_ASTRO_INGEST_", defaults={"max_past_months": raw_months})


LOG_FORMATS = ("auto", "text", "json")


@dataclass(frozen=True, slots=True)
class AccessLog:
    """Which requests the access log records (docs/operations-logging.md).

    ``on``: every request; ``off``: none; ``sample``: a ``rate`` share (0..1) of ordinary requests, and
    always those answered 4xx/5xx or slower than ``slow_ms``.
    """

    mode: str = "on"
    rate: float = 0.01
    slow_ms: float = 1000.0

    MODES = ("on", "off", "sample")

    def __post_init__(self) -> None:
        if self.mode not in self.MODES:
            raise ValueError(f"the access log is one of {', '.join(self.MODES)}, not {self.mode!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"the access log's sample rate is between 0 and 1, not {self.rate}")
        if self.slow_ms < 0:
            raise ValueError("the access log's slow-request threshold must not be negative")

    @classmethod
    def from_env(cls) -> AccessLog:
        """``CORP_ASTRO_ACCESS_LOG`` (on/off/sample), ``CORP_ASTRO_ACCESS_LOG_SAMPLE`` (a rate; setting it
        alone means ``sample``) and ``CORP_ASTRO_ACCESS_LOG_SLOW_MS``."""
        rate = os.environ.get("CORP_ASTRO_ACCESS_LOG_SAMPLE", "")
        mode = os.environ.get("CORP_ASTRO_ACCESS_LOG", "").strip().lower() or ("sample" if rate else "on")
        return cls(
            mode=mode,
            rate=env_float("CORP_ASTRO_ACCESS_LOG_SAMPLE", cls().rate),
            slow_ms=env_float("CORP_ASTRO_ACCESS_LOG_SLOW_MS", cls().slow_ms),
        )


def _log_format() -> str:
    """``CORP_ASTRO_LOG_FORMAT``; else the older ``CORP_ASTRO_LOG_JSON`` (1: json, 0: text); else auto."""
    fmt = os.environ.get("CORP_ASTRO_LOG_FORMAT", "").strip().lower()
    if not fmt and os.environ.get("CORP_ASTRO_LOG_JSON"):
        fmt = "json" if env_bool("CORP_ASTRO_LOG_JSON", True) else "text"
    fmt = fmt or "auto"
    if fmt not in LOG_FORMATS:
        raise ValueError(f"CORP_ASTRO_LOG_FORMAT is one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    return fmt


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved configuration for one process."""

    database_url: str | None
    data_dir: Path
    log_level: str = "INFO"
    log_format: str = "auto"  # auto: text on a terminal, JSON lines otherwise
    access_log: AccessLog = field(default_factory=AccessLog)
    db_pool_min: int = 2
    db_pool_max: int = 10
    jwt_secret_override: str | None = None
    jwt_ttl_seconds: int = 900
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default_factory=tuple)
    scheduler_enabled: bool = True
    auth_limits: AuthLimits = field(default_factory=AuthLimits)
    server_limits: ServerLimits = field(default_factory=ServerLimits)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    # How often each process with the scheduler on delivers due scheduled notifications.
    delivery_interval_seconds: float = 2.0
    # GET /metrics and the counters behind it (CORP_ASTRO_METRICS=0: neither); docs/metrics.md.
    metrics_enabled: bool = True
    # Set: /metrics needs "Authorization: Bearer <token>"; unset: it answers loopback clients only.
    metrics_token: str | None = None
    # SIGTERM: in-flight requests, the ingest queue and running jobs get this long in all to finish.
    shutdown_grace_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from environment variables (see README for the list)."""
        data_dir = Path(os.environ.get("CORP_ASTRO_DATA_DIR", ".data")).resolve()
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            data_dir=data_dir,
            log_level=os.environ.get("CORP_ASTRO_LOG_LEVEL", "INFO").upper(),
            log_format=_log_format(),
            access_log=AccessLog.from_env(),
            db_pool_min=env_int("CORP_ASTRO_DB_POOL_MIN", 2),
            db_pool_max=env_int("CORP_ASTRO_DB_POOL_MAX", 10),
            jwt_secret_override=os.environ.get("CORP_ASTRO_JWT_SECRET") or None,
            jwt_ttl_seconds=env_int("CORP_ASTRO_JWT_TTL_SECONDS", 900),
            trusted_proxies=_parse_networks(os.environ.get("CORP_ASTRO_TRUSTED_PROXIES", "")),
            scheduler_enabled=env_bool("CORP_ASTRO_SCHEDULER", True),
            auth_limits=AuthLimits.from_env(),
            server_limits=ServerLimits.from_env(),
            retention=RetentionPolicy.from_env(),
            ingest=IngestConfig.from_env(),
            delivery_interval_seconds=env_float("CORP_ASTRO_DELIVERY_INTERVAL_SECONDS", 2.0),
            metrics_enabled=env_bool("CORP_ASTRO_METRICS", True),
            metrics_token=os.environ.get("CORP_ASTRO_METRICS_TOKEN") or None,
            shutdown_grace_seconds=env_float("CORP_ASTRO_SHUTDOWN_GRACE_SECONDS", 30.0),
        )

    @property
    def jwt_secret(self) -> str:
        """The token signing secret: from the environment, else generated once under the data dir."""
        if self.jwt_secret_override:
            return self.jwt_secret_override
        return file_secret(self.data_dir / "jwt-secret")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read from the environment on first use."""
    return Settings.from_env()
