"""Pure auth helpers: password hashing, tokens, write keys, client address resolution."""

from __future__ import annotations

import ipaddress
import itertools
import uuid
from pathlib import Path

import pytest
from litestar.datastructures import Headers

from kernel.auth import (
    AuthUser,
    client_ip,
    create_access_token,
    decode_access_token,
    forwarded_for,
    generate_write_key,
    hash_password,
    hash_write_key,
    verify_password,
)
from kernel.db import uuid7
from kernel.errors import AuthenticationError
from kernel.settings import Settings

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def test_password_hash_is_argon2id_and_verifies() -> None:
    h = hash_password("correct horse battery staple")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse battery staple")
    assert not verify_password(h, "wrong")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_access_token_round_trip_and_tamper(tmp_path: Path) -> None:
    settings = Settings(database_url=None, data_dir=tmp_path, jwt_secret_override="s3cret-" + "x" * 32)
    uid = uuid.uuid4()
    token, ttl = create_access_token(settings, uid, "analyst")
    assert ttl == 900
    claims = decode_access_token(settings, token)
    assert claims["sub"] == str(uid)
    assert claims["role"] == "analyst"
    other = Settings(database_url=None, data_dir=tmp_path, jwt_secret_override="other-" + "y" * 32)
    with pytest.raises(AuthenticationError):
        decode_access_token(other, token)


def test_generated_secret_is_kept_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(database_url=None, data_dir=tmp_path)
    first = settings.jwt_secret
    assert len(first) >= 48
    assert (tmp_path / "jwt-secret").read_text().strip() == first
    assert Settings(database_url=None, data_dir=tmp_path).jwt_secret == first


def test_roles_are_ordered() -> None:
    admin = AuthUser(uuid.uuid4(), "admin", "a@x.io")
    user = AuthUser(uuid.uuid4(), "user", "u@x.io")
    assert admin.has_role("analyst")
    assert admin.has_role("user")
    assert not user.has_role("analyst")


def test_write_keys_are_random_and_hashed() -> None:
    a, b = generate_write_key(), generate_write_key()
    assert a != b
    assert len(a) > 40
    assert hash_write_key(a) != hash_write_key(b)
    assert len(hash_write_key(a)) == 32


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("203.0.113.5", "1.2.3.4", (), "203.0.113.5"),  # no proxies configured: header ignored
        ("203.0.113.5", "1.2.3.4", PROXIES, "203.0.113.5"),  # peer is not a proxy: header ignored
        ("10.0.0.1", "1.2.3.4", PROXIES, "1.2.3.4"),
        ("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", PROXIES, "1.2.3.4"),  # spoofed left entry skipped
        ("10.0.0.1", "garbage", PROXIES, "10.0.0.1"),
        ("10.0.0.1", None, PROXIES, "10.0.0.1"),
    ],
)
def test_client_ip_trusts_forwarded_for_only_from_proxies(
    peer: str, xff: str | None, trusted: tuple[ipaddress.IPv4Network, ...], expected: str
) -> None:
    assert client_ip(peer, xff, trusted) == expected


def test_forwarded_for_joins_every_header_line() -> None:
    # A proxy that appends its own line (rather than merging) leaves the client's forged line first.
    headers = Headers([(b"x-forwarded-for", b"6.6.6.6"), (b"X-Forwarded-For", b"198.51.100.7")])
    assert forwarded_for(headers) == "6.6.6.6,198.51.100.7"
    assert client_ip("10.0.0.2", forwarded_for(headers), PROXIES) == "198.51.100.7"
    assert forwarded_for(Headers([])) is None


def test_client_address_drops_an_ipv6_zone() -> None:
    # PostgreSQL's inet refuses "fe80::1%eth0" (the audit row of a login) and ingest's column holds 45
    # characters, which a long zone name passes.
    assert client_ip("fe80::1%eth0", None, ()) == "fe80::1"
    zone = "fe80::1%" + "a" * 60
    assert client_ip("10.0.0.2", zone, PROXIES) == "fe80::1"


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(1000)]
    assert all(u.version == 7 for u in ids)
    assert [u.int >> 80 for u in ids] == sorted(u.int >> 80 for u in ids)
    assert len(set(ids)) == 1000


def test_uuid7_sorts_in_the_order_it_was_made() -> None:
    """Many per millisecond (past the 12-bit sequence too): each id is greater than the one before."""
    ids = [uuid7() for _ in range(20_000)]
    assert all(a.int < b.int for a, b in itertools.pairwise(ids))
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
