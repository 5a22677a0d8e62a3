"""The step types of workflows: what each does, given its templated input. Never commits.

Each returns an ``Outcome``: done (with its output, and a condition's jump) or waiting until a time.
Effects happen in the caller's transaction (``steps.advance``), except ``assign_experiment``, which
uses the experiments domain's public assignment on the runner's pool (sticky, so a repeat finds the
same variant).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import experiments
from core_api.notifications import notify_many
from integrations import queue
from integrations.workflows import events_sql, expressions, timing
from integrations.workflows import repository as repo
from integrations.workflows.triggers import WATERMARK, event_trigger_data, matches_where
from kernel import events
from kernel.db import uuid7

if TYPE_CHECKING:
    import asyncpg

__all__ = ["RUN", "WEBHOOK_EVENT", "Outcome", "StepError", "notification", "use_pool"]

# The runner's pool, for steps that work outside the step's transaction (assign_experiment).
_POOL: ContextVar[Any] = ContextVar("workflow_pool", default=None)


def use_pool(pool: Any) -> None:
    """Give steps run in this context the runner's pool."""
    _POOL.set(pool)


WEBHOOK_EVENT = "workflow.webhook"


class StepError(Exception):
    """A step cannot do its work (a bad templated value, a missing webhook); retried like any error."""


@dataclass
class Outcome:
    """What a step did: done (with ``output`` and the next step) or waiting until ``until``."""

    output: dict[str, Any]
    waiting_until: dt.datetime | None = None
    next_step: str | None = None  # a condition's jump; "end" ends
    variables: dict[str, Any] | None = None
    wait_for: tuple[str, str] | None = None


# --- Step types -------------------------------------------------------------------------------------

Args = tuple[Any, ...]


async def _set_variables(
    conn: asyncpg.Connection, ex: Any, step_id: uuid.UUID, data: Any, *_: Any
) -> Outcome:
    return Outcome(output=data, variables={**ex["variables"], **data})


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> Any:
    """A condition's tree, parsed once per text (trees are tuples, never changed)."""
    return expressions.parse(text)


async def _condition(
    conn: asyncpg.Connection, ex: Any, step_id: uuid.UUID, data: Any, existing: Any, context: Any, now: Any
) -> Outcome:
    result = bool(expressions.evaluate(_parsed(data["if"]), context))
    target = data["then"] if result else data.get("else", "end")
    return Outcome(output={"result": result, "next": target}, next_step=target)


def _uuid(value: Any, field_name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise StepError(f"{field_name} {value!r} is not a user id (a UUID).") from None


def notification(ex: Any, step_id: uuid.UUID, data: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The notification a ``send_notification`` step puts in the inbox, as ``notify_many`` takes it
    (its ``data`` names the step id), and the step's output. StepError for a bad templated value."""
    user_id = _uuid(data.get("user_id"), "user_id")
    for key in ("title", "message"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise StepError(f"{key} is empty after templating.")
    notification_id = uuid7()
    row = (
        notification_id,
        user_id,
        data["title"][:255],
        data["message"],
        str(data.get("notification_type") or "workflow")[:50],
        {
            "workflow_id": str(ex["workflow_id"]),
            "execution_id": str(ex["execution_id"]),
            "step_id": str(step_id),
        },
    )
    return row, {"notification_id": str(notification_id), "user_id": str(user_id)}


async def _send_notification(
    conn: asyncpg.Connection, ex: Any, step_id: uuid.UUID, data: Any, *_: Any
) -> Outcome:
    row, output = notification(ex, step_id, data)
    await notify_many(conn, [row])
    return Outcome(output=output)


async def _webhook(conn: asyncpg.Connection, ex: Any, step_id: uuid.UUID, data: Any, *_: Any) -> Outcome:
    if "webhook_id" in data:
        webhook_id = await repo.active_webhook(conn, _uuid(data["webhook_id"], "webhook_id"))
        if webhook_id is None:
            raise StepError(f"No active webhook {data['webhook_id']}.")
    else:
        webhook_id = await repo.workflow_endpoint(conn, ex["workflow_id"], str(data["url"]))
    body = data.get("payload") or {
        "workflow_id": str(ex["workflow_id"]),
        "execution_id": str(ex["execution_id"]),
        "step_id": str(step_id),
        "trigger": ex["trigger_data"],
        "variables": ex["variables"],
    }
    event = events.Event(step_id, WEBHOOK_EVENT, events.event_body(WEBHOOK_EVENT, body))
    delivery = await queue.enqueue(conn, webhook_id, event)
    await events.wake(conn)
    return Outcome(output={"delivery_id": str(delivery["delivery_id"]), "webhook_id": str(webhook_id)})


async def _delay(
    conn: asyncpg.Connection,
    ex: Any,
    step_id: uuid.UUID,
    data: Any,
    existing: Any,
    context: Any,
    now: dt.datetime,
) -> Outcome:
    if existing is not None and existing["status"] == "waiting":
        until = timing.parse_instant(existing["output"]["until"])
    elif "for" in data:
        until = now + timing.parse_duration(data["for"])
    else:
        try:
            until = timing.parse_instant(str(data["until"]))
        except ValueError:
            raise StepError(f"until {data['until']!r} is not an ISO 8601 timestamp.") from None
    output = {"until": until.isoformat() + "Z"}
    return Outcome(output=output, waiting_until=until if until > now else None)


async def _wait_for_event(
    conn: asyncpg.Connection,
    ex: Any,
    step_id: uuid.UUID,
    data: Any,
    existing: Any,
    context: Any,
    now: dt.datetime,
) -> Outcome:
    who = data.get("user_id") or ex["trigger_data"].get("user")
    if not who:
        raise StepError("No user to wait for: give user_id, or start from an event with a user.")
    name = data["event"]
    if existing is None or existing["status"] != "waiting":
        until = now + timing.parse_duration(data["timeout"])
        # Storage times are real: the wait counts events stored from the real clock on, whatever the
        # run's clock (``run-due --now``). The matcher's watermark starts here at the latest, so an
        # event stored from now on wakes the wait.
        stored = _real_now()
        await repo.init_watermark(conn, WATERMARK, stored - _WATERMARK_MARGIN)
        output = {
            "event": name,
            "user": str(who),
            "timeout_at": until.isoformat() + "Z",
            "stored_after": stored.isoformat() + "Z",
            "received": False,
        }
        return Outcome(output=output, waiting_until=until, wait_for=(name, str(who)))
    until = timing.parse_instant(existing["output"]["timeout_at"])
    since = existing["output"].get("stored_after")
    stored_after = timing.parse_instant(since) if since else existing["started_at"]
    found = await _received(conn, name, str(who), stored_after, until, data.get("where"))
    if found is not None:
        return Outcome(output={**existing["output"], "received": True, "event_data": found})
    if now >= until:
        return Outcome(output={**existing["output"], "received": False, "timed_out": True})
    return Outcome(output=existing["output"], waiting_until=until, wait_for=(name, str(who)))


_WATERMARK_MARGIN = dt.timedelta(seconds=60)


def _real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def _received(
    conn: asyncpg.Connection, name: str, who: str, stored_after: dt.datetime, until: dt.datetime, where: Any
) -> dict[str, Any] | None:
    """The first event ``name`` of ``who`` stored at or after ``stored_after`` (the real clock when the
    wait began), whose own ``timestamp`` is at or before ``until`` (the wait's timeout, on the clock of
    the run that began it) and whose properties match ``where``."""
    found = await events_sql.find_event(conn, name, who, stored_after, until)
    if not found:
        return None
    props = await events_sql.properties_of(conn, found)
    for e in found:
        if matches_where(where, props[e["event_id"]]):
            return event_trigger_data(e, props[e["event_id"]])
    return None


async def _assign_experiment(
    conn: asyncpg.Connection, ex: Any, step_id: uuid.UUID, data: Any, *_: Any
) -> Outcome:
    # The experiments domain's public assignment, on the pool (its own transaction). It is sticky, so
    # a retry of this step (after a crash before the step's commit) finds the same variant.
    user_id = _uuid(data.get("user_id"), "user_id")
    pool = _POOL.get()
    if pool is None:
        raise StepError("No database pool for assign_experiment.")
    out = await experiments.assign_user(pool, str(data["experiment"]), user_id)
    output = {"experiment": out.experiment, "variant": out.variant, "new": out.new, "user_id": str(user_id)}
    return Outcome(output=output)


RUN: dict[str, Any] = {
    "set_variables": _set_variables,
    "condition": _condition,
    "send_notification": _send_notification,
    "webhook": _webhook,
    "delay": _delay,
    "wait_for_event": _wait_for_event,
    "assign_experiment": _assign_experiment,
}
