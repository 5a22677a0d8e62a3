"""Input rules that need no database: emails, languages, time zones, JSON objects, the password policy."""

from __future__ import annotations

import msgspec
import pytest

from core_api.accounts.errors import WeakPasswordError
from core_api.accounts.schemas import PreferencesUpdate, RegisterRequest, check_email
from core_api.accounts.service import check_password_policy
from core_api.resources import check_json_object, check_language, check_timezone


@pytest.mark.parametrize("email", ["a@b.co", "first.last+tag@sub.example.org", "ünï@exämple.de"])
def test_plausible_emails(email: str) -> None:
    assert check_email(email) == email


@pytest.mark.parametrize(
    "email", ["", "a", "a@b", "@b.co", "a@b.", "a@.co", "a b@c.co", "a@@b.co", "a@b.co\n", "x" * 65 + "@b.co"]
)
def test_implausible_emails(email: str) -> None:
    with pytest.raises(ValueError, match="email"):
        check_email(email)


@pytest.mark.parametrize("tag", ["en", "pt-BR", "zh-Hant", "es-419", "fil"])
def test_language_tags(tag: str) -> None:
    assert check_language(tag) == tag


@pytest.mark.parametrize("tag", ["e", "english", "en_US", "en-", "12", "en-toolongsubtag"])
def test_bad_language_tags(tag: str) -> None:
    with pytest.raises(ValueError, match="language"):
        check_language(tag)


def test_time_zones_come_from_the_tz_database() -> None:
    assert check_timezone("Europe/Paris") == "Europe/Paris"
    assert check_timezone("UTC") == "UTC"
    for bad in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime", "europe/paris", ""):
        with pytest.raises(ValueError, match="timezone"):
            check_timezone(bad)


def test_json_objects_are_bounded() -> None:
    check_json_object({"a": [1, {"b": "c"}]}, "data")
    deep: dict[str, object] = {}
    node = deep
    for _ in range(20):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    for bad in (deep, {"k": "a\x00"}, {"a\x00": 1}, {"k": "v" * 20_000}):
        with pytest.raises(ValueError, match="data"):
            check_json_object(bad, "data")


def test_schema_errors_surface_as_validation_errors() -> None:
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        msgspec.json.decode(b'{"timezone": "Nowhere/Land"}', type=PreferencesUpdate)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(
            b'{"email": "a@b.co", "password": "p", "first_name": "a", "last_name": "b", "role": "admin"}',
            type=RegisterRequest,
        )


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 10"),
        ("x" * 129, "at most 128"),
        ("abababababab", "5 different"),
        ("password123", "too common"),
        ("my-jane.doe-secret", "email"),
    ],
)
def test_password_policy(password: str, problem: str) -> None:
    with pytest.raises(WeakPasswordError) as info:
        check_password_policy(password, "jane.doe@example.com")
    assert any(problem in d["message"] for d in info.value.details)


def test_a_long_passphrase_passes() -> None:
    check_password_policy("correct horse battery staple", "jane.doe@example.com")
