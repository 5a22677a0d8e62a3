"""The event catalogue: every type the service emits, with a JSON schema of its ``data``.

A subscription's ``event_type`` is a catalogue name, ``*`` (everything) or a prefix such as
``experiment.*``. Matching is the same here (Python) and in the fan-out's SQL (``repository``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CATALOGUE", "event_schema", "matches", "unknown_pattern_message", "valid_pattern"]

_UUID = {"type": "string", "format": "uuid"}
_STR = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}
_NUM = {"type": "number"}
_INT = {"type": "integer"}


def _obj(description: str, **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "type": "object",
        "properties": props,
        "required": sorted(props),
        "additionalProperties": True,
    }


CATALOGUE: dict[str, dict[str, Any]] = {
    "user.registered": _obj("An account was created.", user_id=_UUID, role=_STR),
    "user.erased": _obj("An account and its data were erased.", user_id=_UUID),
    "experiment.created": _obj(
        "An experiment was defined.", experiment_id=_UUID, name=_STR, status=_STR, start_date=_DATE
    ),
    "experiment.status_changed": _obj(
        "An experiment's status changed.",
        experiment_id=_UUID,
        name=_STR,
        previous_status=_STR,
        status=_STR,
    ),
    "experiment.srm_detected": _obj(
        "A results computation found a sample ratio mismatch (p < 0.001).",
        experiment_id=_UUID,
        name=_STR,
        p_value=_NUM,
        phase=_INT,
    ),
    "export.completed": _obj("A Parquet export finished.", export_id=_UUID, rows=_INT),
    "export.failed": _obj("A Parquet export failed.", export_id=_UUID, error=_STR),
    "report.created": _obj("A report was created.", report_id=_UUID, user_id=_UUID, report_type=_STR),
    "notification.delivered": _obj(
        "A scheduled notification was delivered.", notification_id=_UUID, user_id=_UUID
    ),
    "aggregation.day_finalised": _obj("The rollups of a UTC day are final.", day=_DATE),
    "retention.partition_dropped": _obj(
        "A monthly partition past its retention window was dropped.", table=_STR, partition=_STR
    ),
    "workflow.execution_completed": _obj(
        "A workflow execution ran its last step.", workflow_id=_UUID, execution_id=_UUID, status=_STR
    ),
    "workflow.execution_failed": _obj(
        "A workflow execution failed: a step failed on its last attempt.",
        workflow_id=_UUID,
        execution_id=_UUID,
        status=_STR,
        step=_STR,
        error=_STR,
    ),
    "webhook.test": _obj("Sent by POST /v1/webhooks/{webhook_id}/test.", webhook_id=_UUID),
    "webhook.disabled": _obj(
        "Another endpoint of the same client was disabled (410, or 5 days of failures).",
        webhook_id=_UUID,
        client_id=_STR,
        reason=_STR,
    ),
}
_PREFIXES = frozenset(name.rsplit(".", 1)[0] + "." for name in CATALOGUE)


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON schema of the whole body receivers get for ``event_type``."""
    return {
        "type": "object",
        "properties": {
            "type": {"const": event_type},
            "timestamp": _TIME,
            "data": CATALOGUE[event_type],
        },
        "required": ["type", "timestamp", "data"],
    }


def valid_pattern(pattern: str) -> bool:
    """A catalogue name, ``*``, or ``<prefix>.*`` for a prefix of some catalogue name."""
    if pattern == "*" or pattern in CATALOGUE:
        return True
    return pattern.endswith(".*") and any(p.startswith(pattern[:-1]) for p in _PREFIXES)


def matches(pattern: str, event_type: str) -> bool:
    """Whether a subscription to ``pattern`` receives ``event_type``."""
    if pattern in ("*", event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def unknown_pattern_message(pattern: str) -> str:
    """The 422 detail for an event type that is not in the catalogue."""
    names = ", ".join(sorted(CATALOGUE))
    return f"Unknown event type {pattern!r}: use '*', a prefix such as 'experiment.*', or one of: {names}."
