"""The error contract's pure parts (docs/errors.md): decoding failures as 400 ``invalid_json`` or 422
``validation_error`` with ``{field, message}`` details, stated size limits, and the one HTTP mapping."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, Literal

import msgspec
import pytest

from kernel.body import decode_json
from kernel.errors import (
    InvalidJsonError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ValidationError,
    size_limit,
)
from kernel.http_errors import exception_handlers
from kernel.problems import allowed_values
from kernel.serving_limits import error_response


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Variant(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    weight: Annotated[int, msgspec.Meta(ge=0, le=100)]
    kind: Literal["treatment", "control"] = "treatment"


class Definition(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    variants: list[Variant]
    colour: Colour | None = None
    tags: dict[str, Literal["x", "y"]] = msgspec.field(default_factory=dict)


def _raised(body: bytes) -> Exception:
    with pytest.raises((InvalidJsonError, ValidationError)) as info:
        decode_json(body, Definition)
    return info.value


def _answer(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    handler = next(h for cls, h in exception_handlers.items() if isinstance(exc, cls))
    response = handler(None, exc)
    return response.status_code, response.content, dict(response.headers)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "is empty"),
        (b"{bad", "JSON is malformed: object keys must be strings (byte 1)"),
        (b'{"name": "x",', "Input data was truncated"),
        (b'{"name": "\xff"}', "is not valid UTF-8"),
        # A typed decoder skips an unknown field unread and then reports it: still not JSON.
        (b'{"zz": "\xff"}', "is not valid UTF-8"),
        # A wrong value before the syntax error: the body is not JSON, whatever the decoder met first.
        (b'{"name": 5, oops', "JSON is malformed: object keys must be strings (byte 12)"),
        (b"[1, 2]", "Expected `object`, got `array`"),
        (b"42", "Expected `object`, got `int`"),
        (b"null", "Expected `object`, got `null`"),
        (b"[" * 1200 + b"]" * 1200, "is nested too deeply"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_invalid_json(body: bytes, reason: str) -> None:
    exc = _raised(body)
    assert isinstance(exc, InvalidJsonError)
    assert _answer(exc)[:2] == (
        400,
        {
            "code": "invalid_json",
            "message": "The request body is not a valid JSON object.",
            "details": [{"field": "body", "message": reason}],
        },
    )


def test_valid_utf8_outside_ascii_decodes() -> None:
    assert decode_json('{"name": "café", "variants": []}'.encode(), Definition).name == "café"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"variants": []}, {"field": "body.name", "message": "is required"}),
        ({"name": "a", "variants": [], "zz": 1}, {"field": "body.zz", "message": "is not a known field"}),
        (
            {"name": "a", "variants": [{"name": "b", "weight": 1}, {"name": "c", "weight": "x"}]},
            {"field": "body.variants[1].weight", "message": "Expected `int`, got `str`"},
        ),
        (
            {"name": "a", "variants": [{"name": "b", "weight": 101}]},
            {"field": "body.variants[0].weight", "message": "Expected `int` <= 100"},
        ),
        (
            {"name": "a", "variants": [{"name": "b"}]},
            {"field": "body.variants[0].weight", "message": "is required"},
        ),
        (
            {"name": "a", "variants": [{"name": "b", "weight": 1, "kind": "other"}]},
            {
                "field": "body.variants[0].kind",
                "message": "must be one of: treatment, control",
                "allowed": ["treatment", "control"],
            },
        ),
        (
            {"name": "a", "variants": [], "colour": "green"},
            {"field": "body.colour", "message": "must be one of: red, blue", "allowed": ["red", "blue"]},
        ),
        (
            {"name": "a", "variants": [], "tags": {"k": "z"}},
            {"field": "body.tags[...]", "message": "must be one of: x, y", "allowed": ["x", "y"]},
        ),
    ],
)
def test_a_json_object_that_does_not_fit_is_a_validation_error(body: Any, problem: Any) -> None:
    exc = _raised(json.dumps(body).encode())
    assert isinstance(exc, ValidationError)
    expected = {"code": "validation_error", "message": "The request is not valid; see details."}
    assert _answer(exc)[:2] == (422, {**expected, "details": [problem]})


def test_allowed_values_keep_their_declared_order() -> None:
    assert allowed_values(Literal["hour", "day"] | None, "") == ["hour", "day"]
    assert allowed_values(Definition, ".variants[3].kind") == ["treatment", "control"]
    assert allowed_values(Definition, ".variants[0].weight") is None
    assert allowed_values(Definition, ".nothing.here") is None


def test_size_limits_are_stated_in_bytes() -> None:
    assert size_limit(65536) == "the 64 KB limit (65536 bytes)"
    assert size_limit(1048576) == "the 1 MB limit (1048576 bytes)"
    assert size_limit(10_000_000) == "the limit of 10000000 bytes"
    assert size_limit(500, "events") == "the limit of 500 events"
    status, content, _ = _answer(PayloadTooLargeError(65536))
    assert status == 413
    assert content == {
        "code": "payload_too_large",
        "message": "The request body is over the 64 KB limit (65536 bytes).",
        "details": [{"field": "body", "message": "at most 65536 bytes"}],
    }


def test_a_category_answers_its_one_code_whatever_a_subclass_calls_itself() -> None:
    class Odd(ValidationError):
        code = "odd_name"

    class Big(PayloadTooLargeError):
        code = "too_big"

    assert _answer(Odd("no"))[:2] == (422, {"code": "validation_error", "message": "no"})
    assert _answer(Big(10))[1]["code"] == "payload_too_large"

    # Other categories keep their specific codes, in the same shape.
    class Gone(NotFoundError):
        code = "thing_not_found"

    assert _answer(Gone("No thing."))[:2] == (404, {"code": "thing_not_found", "message": "No thing."})
    status, content, headers = _answer(RateLimitedError("Slow down.", retry_after=7))
    assert (status, content, headers.get("Retry-After")) == (
        429,
        {"code": "rate_limited", "message": "Slow down."},
        "7",
    )


@pytest.mark.parametrize(
    ("status", "code"), [(400, "bad_request"), (408, "request_timeout"), (431, "headers_too_large")]
)
def test_the_protocol_layer_answers_in_the_same_shape(status: int, code: str) -> None:
    raw = error_response(status, code, "Why.")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert json.loads(body) == {"code": code, "message": "Why."}
