"""Templated step inputs: ``"Hi {{ trigger.properties.name }}"`` with values of the execution.

A string that is one placeholder alone (``"{{ trigger.user_id }}"``) becomes the value itself (a number
stays a number, an object an object); placeholders inside longer text are replaced by the value's text
(JSON for objects and arrays, empty for null). Paths are those of the condition language
(``expressions.resolve``): ``trigger.*``, ``steps.<name>.output.*``, ``variables.*``. Nothing is
evaluated: a placeholder is a path, nothing else.
"""

from __future__ import annotations

import json
import re
from typing import Any

from integrations.workflows.expressions import ROOTS, resolve

__all__ = ["PLACEHOLDER", "render", "unknown_roots"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_$-]+)*)\s*\}\}")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _render_str(template: str, context: dict[str, Any]) -> Any:
    whole = PLACEHOLDER.fullmatch(template.strip())
    if whole is not None:
        return resolve(context, whole.group(1).split("."))
    return PLACEHOLDER.sub(lambda m: _text(resolve(context, m.group(1).split("."))), template)


def render(value: Any, context: dict[str, Any]) -> Any:
    """``value`` (a step's input) with every placeholder in its strings replaced."""
    if isinstance(value, str):
        return _render_str(value, context)
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def unknown_roots(value: Any) -> list[str]:
    """The placeholder roots in ``value`` that are not ``trigger``, ``steps`` or ``variables``."""
    if isinstance(value, str):
        return [m.group(1) for m in PLACEHOLDER.finditer(value) if m.group(1).split(".")[0] not in ROOTS]
    if isinstance(value, dict):
        return [r for v in value.values() for r in unknown_roots(v)]
    if isinstance(value, list):
        return [r for v in value for r in unknown_roots(v)]
    return []
