"""A workflow's definition: its JSON Schema (served by ``GET /v1/workflows/schema``) and validation.

Validation is the schema (``jsonschema``, Draft 2020-12) and then what a schema cannot say: unique step
names, condition expressions that parse, jumps to steps that exist further down (so every execution
ends), durations, instants and placeholders. Every problem names its step and field:
``{"field": "body.definition.steps[2].input.if", "message": "step 'check' (condition): ..."}``.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from integrations.workflows import expressions, templating, timing
from kernel.errors import Problem, problem

__all__ = ["SCHEMA", "STEP_TYPES", "TRIGGER_CONFIG_SCHEMAS", "TRIGGER_TYPES", "check", "check_trigger"]

STEP_TYPES = (
    "send_notification",
    "webhook",
    "delay",
    "condition",
    "wait_for_event",
    "set_variables",
    "assign_experiment",
)
TRIGGER_TYPES = ("event", "schedule", "webhook", "manual")
MAX_STEPS = 50
_S = {"type": "string", "minLength": 1, "maxLength": 2000}
_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]{0,63}$"}
_SCALARS = {
    "type": "object",
    "maxProperties": 20,
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
}


def _closed(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props, "additionalProperties": False}


INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "send_notification": _closed(
        ["user_id", "title", "message"],
        user_id=_S,
        title={**_S, "maxLength": 255},
        message=_S,
        notification_type={**_S, "maxLength": 50},
    ),
    "webhook": {
        **_closed([], webhook_id=_S, url={**_S, "maxLength": 255}, payload={"type": "object"}),
        "minProperties": 1,
    },
    "delay": {**_closed([], **{"for": _S, "until": _S}), "minProperties": 1, "maxProperties": 1},
    "condition": _closed(["if", "then"], **{"if": _S, "then": _NAME, "else": _NAME}),
    "wait_for_event": _closed(
        ["event", "timeout"], event={**_S, "maxLength": 100}, timeout=_S, user_id=_S, where=_SCALARS
    ),
    "set_variables": {"type": "object", "maxProperties": 50},
    "assign_experiment": _closed(["experiment", "user_id"], experiment={**_S, "maxLength": 100}, user_id=_S),
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Workflow definition",
    "type": "object",
    "required": ["steps"],
    "additionalProperties": False,
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_STEPS,
            "items": {
                "type": "object",
                "required": ["name", "type", "input"],
                "additionalProperties": False,
                "properties": {
                    "name": _NAME,
                    "type": {"enum": list(STEP_TYPES)},
                    "input": {"type": "object"},
                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": t}}, "required": ["type"]},
                        "then": {"properties": {"input": schema}},
                    }
                    for t, schema in INPUT_SCHEMAS.items()
                ],
            },
        }
    },
}

TRIGGER_CONFIG_SCHEMAS: dict[str, dict[str, Any]] = {
    "event": _closed(
        ["event"], event={**_S, "maxLength": 100}, where=_SCALARS, once_per_user={"type": "boolean"}
    ),
    "schedule": _closed(["cron"], cron={**_S, "maxLength": 100}, timezone={**_S, "maxLength": 64}),
    "webhook": _closed([]),
    "manual": _closed([]),
}
SCHEMA["$defs"] = {f"trigger_config_{k}": v for k, v in TRIGGER_CONFIG_SCHEMAS.items()}

_VALIDATOR = Draft202012Validator(SCHEMA)
_TRIGGER_VALIDATORS = {k: Draft202012Validator(v) for k, v in TRIGGER_CONFIG_SCHEMAS.items()}


def _path(prefix: str, parts: list[Any]) -> str:
    out = prefix
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _step_label(definition: Any, parts: list[Any]) -> str:
    if len(parts) >= 2 and parts[0] == "steps" and isinstance(parts[1], int):
        try:
            step = definition["steps"][parts[1]]
            return f"step {step.get('name')!r} ({step.get('type')}): "
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        return f"step {parts[1]}: "
    return ""


def _schema_problems(definition: Any, prefix: str) -> list[Problem]:
    out = []
    for error in sorted(_VALIDATOR.iter_errors(definition), key=lambda e: list(e.absolute_path)):
        if error.validator in ("if", "allOf"):
            continue
        parts = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [r for r in error.validator_value if r not in error.instance]
            parts += missing[:1]
        message = _step_label(definition, parts) + error.message[:300]
        out.append(problem(_path(prefix, parts), message))
    return out[:50]


def check(definition: Any, prefix: str = "body.definition", check_url: Any = None) -> list[Problem]:
    """Every problem of ``definition``; empty when it is valid. ``check_url(url) -> str | None`` vets
    the ``url`` of webhook steps (the SSRF guard's answer)."""
    problems = _schema_problems(definition, prefix)
    if problems:
        return problems
    steps = definition["steps"]
    names = [s["name"] for s in steps]
    for i, step in enumerate(steps):
        where = f"{prefix}.steps[{i}]"
        label = f"step {step['name']!r} ({step['type']}): "
        if step["name"] in names[:i]:
            problems.append(problem(f"{where}.name", label + "the name is used by an earlier step"))
        for field, message in _step_problems(step, names[i + 1 :], check_url):
            problems.append(problem(f"{where}.{field}", label + message))
    return problems


def _step_problems(step: dict[str, Any], later: list[str], check_url: Any) -> list[tuple[str, str]]:
    kind, data = step["type"], step["input"]
    out = [("input", f"unknown placeholder {{{{ {r} }}}}") for r in templating.unknown_roots(data)]
    if kind == "condition":
        out += _condition_problems(data, later)
    elif kind == "delay":
        out += _time_problems(data, "for", "until")
    elif kind == "wait_for_event":
        out += _time_problems(data, "timeout", None)
    elif kind == "webhook":
        out += _webhook_problems(data, check_url)
    return out


def _condition_problems(data: dict[str, Any], later: list[str]) -> list[tuple[str, str]]:
    out = []
    try:
        expressions.parse(data["if"])
    except expressions.ExpressionError as exc:
        out.append(("input.if", f"the expression {exc}"))
    for key in ("then", "else"):
        target = data.get(key, "end")
        if target != "end" and target not in later:
            out.append((f"input.{key}", f"{target!r} is not a later step (jumps go forward) or 'end'"))
    return out


def _time_problems(data: dict[str, Any], duration_key: str, instant_key: str | None) -> list[tuple[str, str]]:
    if duration_key in data:
        try:
            timing.parse_duration(data[duration_key])
        except ValueError as exc:
            return [(f"input.{duration_key}", str(exc))]
    if instant_key and instant_key in data and "{{" not in data[instant_key]:
        try:
            timing.parse_instant(data[instant_key])
        except ValueError:
            return [(f"input.{instant_key}", "is not an ISO 8601 timestamp")]
    return []


def _webhook_problems(data: dict[str, Any], check_url: Any) -> list[tuple[str, str]]:
    if ("webhook_id" in data) == ("url" in data):
        return [("input", "give exactly one of webhook_id (a subscription) or url")]
    if "url" in data and check_url is not None:
        reason = check_url(data["url"])
        if reason:
            return [("input.url", reason)]
    return []


def check_trigger(trigger_type: str, config: Any, prefix: str = "body.trigger_config") -> list[Problem]:
    """The problems of ``trigger_config`` for ``trigger_type`` (a known type)."""
    validator = _TRIGGER_VALIDATORS[trigger_type]
    problems = [
        problem(_path(prefix, list(e.absolute_path)), e.message[:300]) for e in validator.iter_errors(config)
    ]
    if problems or trigger_type != "schedule":
        return problems
    try:
        timing.check_cron(config["cron"], config.get("timezone", "UTC"))
    except ValueError as exc:
        return [problem(f"{prefix}.cron", str(exc)[:300])]
    return []
