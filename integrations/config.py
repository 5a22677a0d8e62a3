"""Webhook delivery settings, read once at start-up from ``CORP_ASTRO_WEBHOOK_*`` (docs/webhooks.md)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from kernel.settings import env_bool, section_from_env

__all__ = ["DEFAULT_RETRY_SCHEDULE", "DeliveryNumbers", "Network", "WebhookConfig"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Svix's schedule: the first attempt at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (~27.6 h).
DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass(frozen=True, slots=True)
class DeliveryNumbers:
    timeout_seconds: float = 10.0  # one attempt, connect to last byte read
    lease_seconds: float = 0.0  # how long a claimed attempt is ours; 0: timeout + 30 s
    disable_after_seconds: float = 5 * 86_400.0  # failing without a success this long: disabled
    rotation_overlap_seconds: float = 86_400.0  # the old secret keeps signing this long
    jitter: float = 0.1  # each retry delay is scaled by a random factor in [1 - jitter, 1 + jitter]
    concurrency: int = 64  # attempts in flight per process
    endpoint_concurrency: int = 4  # attempts in flight per endpoint (read across processes when claiming)
    poll_seconds: float = 1.0  # the dispatcher's fallback poll when no notification arrives
    fanout_batch: int = 500  # events taken from the outbox per transaction
    linger_seconds: float = 0.005  # wake-ups and outcomes this close together share one transaction


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Everything the dispatcher and the API need to know about delivery."""

    numbers: DeliveryNumbers = field(default_factory=DeliveryNumbers)
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    allow_nets: tuple[Network, ...] = ()
    allow_http: bool = False

    @property
    def lease_seconds(self) -> float:
        """The lease of a claimed attempt: longer than the attempt's own timeout."""
        return self.numbers.lease_seconds or self.numbers.timeout_seconds + 30.0

    @classmethod
    def from_env(cls) -> WebhookConfig:
        """``CORP_ASTRO_WEBHOOK_<FIELD>``, plus ``RETRY_SCHEDULE`` (comma-separated seconds),
        ``ALLOW_NETS`` (comma-separated CIDRs) and ``ALLOW_HTTP`` (1 allows http:// targets)."""
        raw_schedule = os.environ.get("CORP_ASTRO_WEBHOOK_RETRY_SCHEDULE", "")
        schedule = tuple(float(p) for p in raw_schedule.split(",") if p.strip()) or DEFAULT_RETRY_SCHEDULE
        if any(s < 0 for s in schedule):
            raise ValueError("CORP_ASTRO_WEBHOOK_RETRY_SCHEDULE holds negative delays")
        raw_nets = os.environ.get("CORP_ASTRO_WEBHOOK_ALLOW_NETS", "")
        nets = tuple(ipaddress.ip_network(p.strip(), strict=False) for p in raw_nets.split(",") if p.strip())
        return cls(
            numbers=section_from_env(DeliveryNumbers, "CORP_ASTRO_WEBHOOK_"),
            retry_schedule=schedule,
            allow_nets=nets,
            allow_http=env_bool("CORP_ASTRO_WEBHOOK_ALLOW_HTTP", False),
        )
