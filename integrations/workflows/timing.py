"""Durations (``"1d"``, ``"90m"``), instants (``--now``, ``delay.until``) and schedules (cron in a zone).

Schedules use APScheduler's ``CronTrigger`` (already a dependency for the jobs) with a ``zoneinfo``
zone, so a ``0 9 * * *`` in Europe/Berlin fires at 09:00 local on every day, whichever side of a DST
change it is on.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

__all__ = ["MAX_DURATION", "check_cron", "next_fire", "parse_duration", "parse_instant"]

_DURATION = re.compile(r"^\s*(\d{1,9})\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = dt.timedelta(days=366)


def parse_duration(text: str) -> dt.timedelta:
    """``"30s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1w"`` (at most a year); ValueError otherwise."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError("is not a duration such as '30s', '15m', '2h', '1d' or '1w'")
    value = dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    if value > MAX_DURATION:
        raise ValueError("is longer than 366 days")
    return value


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 timestamp as naive UTC; one without a zone is UTC. ValueError otherwise."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _trigger(expression: str, timezone: str) -> CronTrigger:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    return CronTrigger.from_crontab(expression, timezone=zone)


def check_cron(expression: str, timezone: str) -> None:
    """ValueError with a reason if ``expression`` (five fields) or ``timezone`` is not valid."""
    if not isinstance(expression, str) or len(expression.split()) != 5:
        raise ValueError("is not a cron expression of five fields (minute hour day month weekday)")
    _trigger(expression, timezone)


def next_fire(expression: str, timezone: str, after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after ``after`` (naive UTC), as naive UTC."""
    trigger = _trigger(expression, timezone)
    start = after.replace(tzinfo=dt.UTC) + dt.timedelta(seconds=1)
    fire = trigger.get_next_fire_time(None, start)
    return None if fire is None else fire.astimezone(dt.UTC).replace(tzinfo=None)
