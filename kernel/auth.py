"""Authentication primitives every domain uses: passwords, access tokens, roles, write keys, client IPs.

- Passwords are hashed with argon2id (argon2-cffi's default type).
- Access tokens are short-lived HS256 JWTs signed with the settings' secret.
- Write keys are 32 random bytes; only their SHA-256 is stored. A fast hash is right here because the
  key is high-entropy (unlike a password), and ingest checks it on every request.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kernel.errors import AuthenticationError, PermissionDeniedError

if TYPE_CHECKING:
    import asyncpg
    from litestar.connection import ASGIConnection

    from kernel.settings import Settings

__all__ = [
    "ROLES",
    "AccountLookup",
    "AuthUser",
    "Source",
    "SourceLookup",
    "WriteKeyCache",
    "authenticate_caller",
    "bearer_from_header",
    "client_ip",
    "create_access_token",
    "decode_access_token",
    "forwarded_for",
    "generate_write_key",
    "hash_password",
    "hash_write_key",
    "needs_rehash",
    "require_role",
    "secret_digest",
    "verify_password",
    "write_key_from_basic",
]

ROLES = ("user", "analyst", "admin")
_ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
_hasher = PasswordHasher()
# A valid hash of a random password, verified when the email is unknown so that response timing does
# not reveal which emails have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
WRITE_KEY_PREFIX = "ca_wk_"


def hash_password(password: str) -> str:
    """Hash ``password`` with argon2id."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against a stored hash in constant time; ``None`` burns the same time."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the stored hash uses weaker parameters than the current ones."""
    return _hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True, slots=True)
class AuthUser:
    """The authenticated caller of a request."""

    user_id: uuid.UUID
    role: str
    email: str

    def has_role(self, role: str) -> bool:
        """Roles are ordered: admin includes analyst includes user."""
        return _ROLE_RANK.get(self.role, -1) >= _ROLE_RANK[role]


def create_access_token(
    settings: Settings, user_id: uuid.UUID, role: str, version: int = 0
) -> tuple[str, int]:
    """A signed access token for ``user_id`` of token generation ``version``, and its lifetime."""
    now = int(time.time())
    ttl = settings.jwt_ttl_seconds
    claims = {
        "sub": str(user_id),
        "role": role,
        "ver": version,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256"), ttl


def decode_access_token(settings: Settings, token: str) -> dict[str, Any]:
    """Verify a token's signature and expiry; raise ``AuthenticationError`` otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as exc:
        raise AuthenticationError("The access token is invalid or expired.") from exc
    return claims


def bearer_from_header(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it holds."""
    scheme, _, value = (header or "").strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The Bearer token of a request, if any."""
    return bearer_from_header(connection.headers.get("authorization"))


# The owning domain's lookup of an account for authentication (accounts owns users): a record with
# ``user_id``, ``role``, ``email``, ``status`` and ``version`` (the token generation), or None.
AccountLookup = Callable[["asyncpg.Connection | asyncpg.Pool", uuid.UUID], Awaitable[Any]]


async def load_auth_user(conn: asyncpg.Connection | asyncpg.Pool, state: Any, token: str) -> AuthUser:
    """Resolve a bearer token to an active user with one lookup (``state.account_lookup``, registered
    by the accounts domain). Suspended or deleted accounts, and tokens issued before the account's
    latest password change, status change or logout, lose access at once."""
    claims = decode_access_token(state.settings, token)
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise AuthenticationError("The access token is invalid or expired.") from exc
    lookup: AccountLookup | None = getattr(state, "account_lookup", None)
    if lookup is None:
        raise AuthenticationError("Access tokens are not accepted: no accounts domain is registered.")
    row = await lookup(conn, user_id)
    if row is None or row["status"] != "active" or claims.get("ver", 0) != row["version"]:
        raise AuthenticationError("The access token is invalid or expired.")
    return AuthUser(user_id=row["user_id"], role=row["role"], email=row["email"])


def require_role(user: AuthUser, role: str) -> None:
    """Raise ``PermissionDeniedError`` unless ``user`` has at least ``role``."""
    if not user.has_role(role):
        raise PermissionDeniedError(f"This action needs the {role} role.")


# --- Write keys ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """An event source authenticated by its write key."""

    source_id: uuid.UUID
    name: str


def generate_write_key() -> str:
    """A new write key: shown once, stored only as its hash."""
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> bytes:
    """SHA-256 of a high-entropy secret (a write key, a refresh token): its stored form. A fast hash is
    right for random secrets, unlike passwords."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def hash_write_key(key: str) -> bytes:
    """The stored form of a write key."""
    return secret_digest(key)


# The owning domain's query for a write key's hash: the active source, or None (ingest owns api_sources).
SourceLookup = Callable[["asyncpg.Pool", bytes], Awaitable["Source | None"]]


class WriteKeyCache:
    """Per-process cache of write-key lookups, so the hot paths skip a round trip.

    Entries (hits and misses) live ``ttl`` seconds, which bounds how long a revoked key keeps working
    in another process. The cache holds hashes, never keys, and is bounded in size. The lookup itself
    is the owning domain's (``lookup``): the kernel names no domain table.
    """

    def __init__(self, lookup: SourceLookup, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, Source | None]] = {}

    def invalidate(self) -> None:
        """Forget every cached lookup (after a revocation in this process)."""
        self._entries.clear()

    async def authenticate(self, pool: asyncpg.Pool, key: str | None) -> Source:
        """Return the source of an active ``key`` or raise ``AuthenticationError``."""
        if not key:
            raise AuthenticationError("A write key is required (HTTP Basic username or writeKey).")
        digest = hash_write_key(key)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is None or hit[0] < now:
            source = await self.lookup(pool, digest)
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            hit = (now + self.ttl, source)
            self._entries[digest] = hit
        if hit[1] is None:
            raise AuthenticationError("The write key is invalid or revoked.")
        return hit[1]


def write_key_from_basic(header: str | None) -> str | None:
    """The write key of ``Authorization: Basic base64(key:)`` (the colon is optional); None when the
    header is absent or not Basic. Undecodable credentials are a 401."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII input (and UnicodeDecodeError)
        raise AuthenticationError("The Authorization header is not valid HTTP Basic.") from exc
    return decoded.partition(":")[0] or None


async def authenticate_caller(
    state: Any, authorization: str | None, *, bearer: bool = True
) -> AuthUser | Source | None:
    """The caller named by a request's ``Authorization`` header, for every route that takes an app's
    write key (ingest, assignment): a write key as the HTTP Basic username resolves to its ``Source``;
    with ``bearer``, an access token to its ``AuthUser``. None when the header names neither (the caller
    may look elsewhere, e.g. ingest's ``writeKey`` body field); bad credentials raise (401).

    Both are single autocommit lookups on the pool (the write key's cached), never a transaction.
    """
    pool: asyncpg.Pool = state.db.pool
    key = write_key_from_basic(authorization)
    if key is not None:
        source: Source = await state.write_keys.authenticate(pool, key)
        return source
    token = bearer_from_header(authorization) if bearer else None
    return await load_auth_user(pool, state, token) if token else None


# --- Client address ------------------------------------------------------------------------------


def forwarded_for(headers: Any) -> str | None:
    """Every ``X-Forwarded-For`` line of a request joined in order (RFC 9110: one comma-separated list).

    ``headers`` is a multi-valued mapping with ``getall`` (Litestar's ``Headers``). Reading only the first
    line would believe a client's forged line when a proxy appends its own line instead of merging.
    """
    lines: list[str] = headers.getall("x-forwarded-for", [])
    return ",".join(lines) if lines else None


def client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> str | None:
    """The client's address: X-Forwarded-For is believed only when the peer is a configured proxy.

    Walks the X-Forwarded-For list from the right, skipping trusted proxies, and returns the first
    address that is not one; a malformed entry stops the walk at the last trusted hop. An IPv6 zone
    (``fe80::1%eth0``) is dropped: it means nothing off the host, and PostgreSQL's ``inet`` refuses it.
    """
    found = _client_ip(peer, forwarded_for, trusted)
    return found.split("%", 1)[0] if found is not None else None


def _client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> str | None:
    if peer is None or not trusted or not forwarded_for:
        return peer

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    current = peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return current
        current = hop
        if not is_trusted(hop):
            return hop
    return current


def utcnow() -> dt.datetime:
    """Naive UTC now, matching the schema's TIMESTAMP (without time zone) columns."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
