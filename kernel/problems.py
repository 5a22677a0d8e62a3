"""msgspec's and Litestar's validation errors as the API's one error shape (``docs/errors.md``).

Every path that decodes a request turns its failures into one of two errors here:

- :class:`~kernel.errors.InvalidJsonError` (400 ``invalid_json``) when the body is not a JSON object:
  malformed, not UTF-8, nested too deeply, empty, or another top-level type;
- :class:`~kernel.errors.ValidationError` (422 ``validation_error``) when it is, but a value is missing,
  unknown, of the wrong type or out of range, with ``details`` naming each field by its path
  (``body.variants[1].weight``, ``query.granularity``) and, for an enum, its allowed values.

All of it runs only once a decode has failed: a request that decodes costs nothing more.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from typing import Any

import msgspec

from kernel.errors import InvalidJsonError, Problem, ValidationError, problem

__all__ = [
    "INVALID_MESSAGE",
    "body_error",
    "field_problem",
    "names_a_field",
    "not_json",
    "param_problem",
    "split",
    "validation_error",
    "wrong_type",
]

INVALID_MESSAGE = "The request is not valid; see details."

_AT = re.compile(r"^(?P<message>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>.*)`$", re.DOTALL)
# A step of msgspec's path: ``.name``, ``[3]``, or ``[...]`` (a value of a mapping).
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_JSON_TYPES = {dict: "object", list: "array", str: "str", int: "int", float: "float", bool: "bool"}


def not_json(body: bytes | None, exc: BaseException) -> InvalidJsonError:
    """The 400 for a body that does not decode as JSON, its reason the same whichever route read it."""
    if body is not None and not body:
        reason = "is empty"
    elif isinstance(exc, RecursionError):
        reason = "is nested too deeply"
    elif isinstance(exc, UnicodeDecodeError) or "UTF-8" in str(exc):
        reason = "is not valid UTF-8"
    else:
        reason = str(exc)
    return InvalidJsonError(reason)


def wrong_type(value: Any) -> InvalidJsonError:
    """The 400 for well-formed JSON that is not an object (worded as msgspec words it)."""
    kind = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
    return InvalidJsonError(f"Expected `object`, got `{kind}`")


def body_error(exc: msgspec.ValidationError, body: bytes, type_: Any) -> InvalidJsonError | ValidationError:
    """A typed decode of ``body`` into ``type_`` failed: 400 if the body is not a JSON object, else 422.

    A typed decoder stops at the first value that does not fit and skips unknown fields unread, so
    whether the body is JSON at all (UTF-8 included) is checked here, by decoding it untyped.
    """
    try:
        msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as bad:
        return not_json(body, bad)
    message, path = split(str(exc))
    if not path and message.startswith("Expected "):
        return InvalidJsonError(message)
    return validation_error([field_problem("body", path, message, type_)])


def validation_error(details: list[Problem]) -> ValidationError:
    """The 422 with these per-field problems."""
    return ValidationError(INVALID_MESSAGE, details=details)


def param_problem(field: str, message: str, type_: Any) -> Problem:
    """A query, path, header or cookie parameter's problem, ``field`` being e.g. ``query.granularity``."""
    return field_problem(field, "", message, type_)


def names_a_field(message: str) -> bool:
    """Whether msgspec's message is about a field of an object (missing or unknown), not the object."""
    return _FIELD.match(message) is not None


def field_problem(root: str, path: str, message: str, type_: Any) -> Problem:
    """One ``{field, message}`` from msgspec's message for the value at ``path`` under ``root``."""
    if found := _FIELD.match(message):
        missing = found["kind"] == "missing required"
        return problem(f"{root}{path}.{found['name']}", "is required" if missing else "is not a known field")
    if message.startswith("Invalid enum value") and type_ is not None:
        allowed = allowed_values(type_, path)
        if allowed:
            listed = ", ".join(str(v) for v in allowed)
            return problem(f"{root}{path}", f"must be one of: {listed}", allowed=allowed)
    return problem(f"{root}{path}", message)


def allowed_values(type_: Any, path: str) -> list[Any] | None:
    """The values of the enum (``Literal`` or ``enum.Enum``) at ``path`` (``.a[1].b``) in ``type_``, in
    their declared order; None if there is none there."""
    for name, index in _STEP.findall(path):
        type_ = _step(type_, name, int(index) if index and index != "..." else None)
        if type_ is None:
            return None
    return _values(type_)


def split(text: str) -> tuple[str, str]:
    """msgspec's ``"Expected `int`, got `str` - at `$.a[1].b`"`` as (``Expected ...``, ``.a[1].b``)."""
    found = _AT.match(text)
    return (found["message"], found["path"]) if found else (text, "")


def _options(type_: Any) -> tuple[Any, ...]:
    """The types a value of ``type_`` may have: the members of a union (``None`` left out), the type of an
    ``Annotated``, else ``type_`` itself."""
    origin = typing.get_origin(type_)
    if origin is typing.Annotated:
        return _options(typing.get_args(type_)[0])
    if origin is typing.Union or origin is types.UnionType:
        return tuple(t for arg in typing.get_args(type_) if arg is not type(None) for t in _options(arg))
    return (type_,)


def _step(type_: Any, name: str, index: int | None) -> Any:
    """The type one step (a field name or an index) into ``type_``; None where there is no such step."""
    for option in _options(type_):
        found = _field_type(option, name) if index is None else _item_type(option, index)
        if found is not None:
            return found
    return None


def _field_type(type_: Any, name: str) -> Any:
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return next((f.type for f in msgspec.structs.fields(type_) if f.encode_name == name), None)
    args = typing.get_args(type_)
    return args[1] if typing.get_origin(type_) is dict and len(args) == 2 else None


def _item_type(type_: Any, index: int) -> Any:
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return args[index] if index < len(args) else None
    return args[0] if origin in (list, set, frozenset, tuple) and args else None


def _values(type_: Any) -> list[Any] | None:
    for option in _options(type_):
        if typing.get_origin(option) is typing.Literal:
            return list(typing.get_args(option))
        if isinstance(option, type) and issubclass(option, enum.Enum):
            return [m.value for m in option]
    return None
