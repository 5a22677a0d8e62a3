"""Event triggers: newly ingested events matched against the active event-triggered workflows, after
ingest committed them, never in the ingest request.

The matcher reads ``analytics_events`` past a watermark ``(created_at, event_id)`` kept in
``workflow_watermarks``, through the index on (event_name, created_at). It only reads events stored at
least ``settle`` seconds ago, so that an ingest transaction that began earlier but committed later is
not skipped. One matcher runs at a time (the watermark row is locked with SKIP LOCKED); executions are
inserted with ON CONFLICT DO NOTHING on (workflow, ``event:<event_id>``) and, for ``once_per_user``, on
(workflow, user), so a restart or a second process never starts one twice. The same pass wakes the
executions waiting (``wait_for_event``) for one of the events' names and users.

Schedules: an active schedule-triggered workflow whose ``next_run_at`` has come starts one execution
keyed by the fire time, and its next fire time is computed from that one (missed fires are coalesced
into one, as APScheduler does).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from integrations.workflows import events_sql, timing
from integrations.workflows import repository as repo

if TYPE_CHECKING:
    import asyncpg

__all__ = ["WATERMARK", "event_trigger_data", "fire_schedules", "match_events"]

WATERMARK = "events"


def _who(event: Any) -> str | None:
    if event["user_id"] is not None:
        return str(event["user_id"])
    who: str | None = event["external_user_id"] or event["anonymous_id"]
    return who


def event_trigger_data(event: Any, properties: dict[str, str]) -> dict[str, Any]:
    """An execution's ``trigger``: the event's ids, name, time and properties (values as stored: text)."""
    return {
        "type": "event",
        "event_id": str(event["event_id"]),
        "event": event["event_name"],
        "user_id": None if event["user_id"] is None else str(event["user_id"]),
        "anonymous_id": event["anonymous_id"],
        "external_user_id": event["external_user_id"],
        "user": _who(event),
        "timestamp": event["timestamp"].isoformat() + "Z",
        "properties": properties,
    }


def _stored(value: Any) -> str:
    """A ``where`` value as ingest stores a property: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def matches_where(where: dict[str, Any] | None, properties: dict[str, str]) -> bool:
    """Whether every ``where`` property has the given value."""
    return all(properties.get(k) == _stored(v) for k, v in (where or {}).items())


def _starts(
    workflows: Sequence[Any], event: Any, props: dict[str, str], now: dt.datetime
) -> list[tuple[Any, ...]]:
    rows = []
    for w in workflows:
        config = w["trigger_config"]
        if config.get("event") != event["event_name"] or event["created_at"] < w["created_at"]:
            continue
        if not matches_where(config.get("where"), props):
            continue
        who = _who(event)
        user_key = who if config.get("once_per_user") and who else None
        data = event_trigger_data(event, props)
        rows.append(
            (
                w["workflow_id"],
                w["version"],
                data,
                f"event:{event['event_id']}",
                user_key,
                w["first_step"],
                now,
            )
        )
    return rows


async def match_events(
    conn: asyncpg.Connection, now: dt.datetime, *, settle: float, limit: int = 1000
) -> tuple[int, int]:
    """One batch: (events read, executions started). ``now`` is the due time of new executions; the
    read bound is the real clock minus ``settle`` seconds."""
    workflows = await repo.event_workflows(conn)
    names = sorted(
        {w["trigger_config"].get("event") for w in workflows} | set(await repo.waited_events(conn))
    )
    if not names:
        return 0, 0
    first = min((w["created_at"] for w in workflows), default=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    await repo.init_watermark(conn, WATERMARK, first - dt.timedelta(seconds=settle))
    mark = await repo.get_watermark(conn, WATERMARK)
    if mark is None:
        return 0, 0  # another matcher holds it
    until = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=settle)
    events = await events_sql.events_after(
        conn, (mark["position_at"], mark["position_id"]), names, until, limit
    )
    if not events:
        return 0, 0
    props = await events_sql.properties_of(conn, events)
    # Among events read together, the earliest by its own time starts a once_per_user execution (the
    # user's first), whatever order they were stored in.
    by_time = sorted(events, key=lambda e: (e["timestamp"], e["created_at"], e["event_id"]))
    rows = [r for e in by_time for r in _starts(workflows, e, props[e["event_id"]], now)]
    started = await repo.start_executions(conn, rows)
    wake = [(e["event_name"], str(who)) for e in events for who in _identities(e)]
    await repo.wake_waiting(conn, wake, now)
    last = events[-1]
    await repo.set_watermark(conn, WATERMARK, last["created_at"], last["event_id"])
    return len(events), len(started)


def _identities(event: Any) -> list[Any]:
    return [v for v in (event["user_id"], event["external_user_id"], event["anonymous_id"]) if v is not None]


async def fire_schedules(conn: asyncpg.Connection, now: dt.datetime, limit: int = 100) -> int:
    """Start one execution per schedule due by ``now``; the number started."""
    started = 0
    for w in await repo.due_schedules(conn, now, limit):
        fire_at: dt.datetime = w["next_run_at"]
        definition = await repo.get_version(conn, w["workflow_id"], w["version"])
        data = {
            "type": "schedule",
            "scheduled_at": fire_at.isoformat() + "Z",
            "fired_at": now.isoformat() + "Z",
        }
        ids = await repo.start_executions(
            conn,
            [
                (
                    w["workflow_id"],
                    w["version"],
                    data,
                    f"schedule:{fire_at.isoformat()}",
                    None,
                    definition["steps"][0]["name"],
                    now,
                )
            ],
        )
        started += len(ids)
        config = w["trigger_config"]
        following = timing.next_fire(config["cron"], config.get("timezone", "UTC"), max(fire_at, now))
        await repo.update_workflow(conn, w["workflow_id"], {"next_run_at": following})
    return started
