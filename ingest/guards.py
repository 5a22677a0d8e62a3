"""Bounds on what a client can make ingest write: the event-time window and a checked ``context.ip``.

Both run on the hot path, so each is computed once per request (the window) or answered from C or a
small cache (the address); docs/event-time-window.md explains the window.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import socket

__all__ = ["EARLIEST", "checked_ip", "oldest_allowed", "time_window"]

# No stored time is ever before this, whatever the window: PostgreSQL and Python agree on every date
# from here on, and four-digit years format the same everywhere (glibc's %Y does not pad years < 1000).
EARLIEST = dt.datetime(1000, 1, 1)
# Longer than any IPv6 text with a zone that can name a real interface; longer input is not parsed.
_IP_INPUT_MAX = 64


@functools.lru_cache(maxsize=64)
def _oldest(year: int, month: int, months: int) -> dt.datetime:
    index = year * 12 + month - 1 - max(months, 0)
    if index < EARLIEST.year * 12:
        return EARLIEST
    return dt.datetime(index // 12, index % 12 + 1, 1)


def oldest_allowed(received: dt.datetime, max_past_months: int) -> dt.datetime:
    """Midnight on the first day of the month ``max_past_months`` before ``received``'s month.

    The oldest retained month when ``max_past_months`` is the raw retention window: an event before it
    would be dropped by the next retention run, or land in a month retention no longer manages.
    Never before :data:`EARLIEST`. Cached, so a request pays one dictionary lookup.
    """
    return _oldest(received.year, received.month, max_past_months)


def time_window(
    received: dt.datetime, max_past_months: int, max_future: dt.timedelta
) -> tuple[dt.datetime, dt.datetime]:
    """(oldest, latest) for one request: earlier events are rejected, later ones clamped to ``received``."""
    try:
        latest = received + max_future
    except OverflowError:
        latest = dt.datetime.max
    return oldest_allowed(received, max_past_months), latest


@functools.lru_cache(maxsize=1024)
def _parsed_ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    # An IPv6 zone (fe80::1%eth0) means nothing off the client's host; kernel.auth.client_ip drops it too.
    return value.split("%", 1)[0]


def checked_ip(value: str) -> str | None:
    """``value`` if it is an IP address (an IPv6 zone dropped), else None.

    ``inet_pton`` checks the usual forms in C, a tenth of the cost of ``ipaddress``; it accepts no more
    than ``ipaddress.ip_address`` does (four decimal octets up to 255 without leading zeros; IPv6 in any
    of its notations), as tests/unit/ingest/test_guards.py checks. What it refuses (zones, garbage) goes
    through ``ipaddress.ip_address``, cached.
    """
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return _parsed_ip(value) if len(value) <= _IP_INPUT_MAX else None
    return value
