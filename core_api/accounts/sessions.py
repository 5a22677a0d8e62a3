"""Sessions: an access token plus a rotating refresh token, with reuse detection.

Login opens a family of refresh tokens. ``POST /v1/auth/refresh`` exchanges the family's current token
for a new access token and the family's next refresh token, marking the old one used. Presenting a used
token again means it was copied (the legitimate client already holds its successor), so the whole family
is revoked and the caller must log in again (OAuth 2.0 Security BCP, refresh token rotation). Refresh
tokens are 32 random bytes stored as SHA-256 (high-entropy, like write keys: a fast hash is right), carry
the account's token generation, and so end with a password change, a status change, a logout or erasure.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from core_api.accounts import repository as repo
from core_api.accounts.errors import InvalidRefreshTokenError
from core_api.accounts.schemas import TokenResponse
from kernel import audit
from kernel.auth import create_access_token, secret_digest, utcnow

if TYPE_CHECKING:
    from kernel.settings import Settings

__all__ = ["RefreshOutcome", "issue", "refresh"]

REFRESH_PREFIX = "ca_rt_"


async def issue(
    conn: asyncpg.Connection,
    settings: Settings,
    user_id: uuid.UUID,
    role: str,
    *,
    family_id: uuid.UUID | None = None,
    version: int | None = None,
) -> TokenResponse:
    """An access token and a refresh token (a new family unless ``family_id``), in the caller's
    transaction; only the refresh token's hash is stored."""
    if version is None:
        version = await repo.token_version(conn, user_id)
    access, ttl = create_access_token(settings, user_id, role, version)
    refresh_token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    refresh_ttl = settings.auth_limits.refresh_ttl_seconds
    await repo.insert_refresh_token(
        conn,
        user_id,
        family_id or uuid.uuid4(),
        secret_digest(refresh_token),
        version,
        utcnow() + dt.timedelta(seconds=refresh_ttl),
    )
    return TokenResponse(
        access_token=access,
        expires_in=ttl,
        user_id=user_id,
        role=role,
        refresh_token=refresh_token,
        refresh_expires_in=refresh_ttl,
    )


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """Returned, not raised, so that a reuse's revocation still commits before the 401."""

    token: TokenResponse | None = None
    error: InvalidRefreshTokenError | None = None


_REFUSED = "The refresh token is invalid, expired or revoked; log in again."


async def refresh(conn: asyncpg.Connection, settings: Settings, token: str) -> RefreshOutcome:
    """Rotate ``token``: the next token of its family and a new access token, or a refusal."""
    row = await repo.lock_refresh_token(conn, secret_digest(token))
    if row is None or row["revoked_at"] is not None:
        return RefreshOutcome(error=InvalidRefreshTokenError(_REFUSED))
    if row["used_at"] is not None:
        revoked = await repo.revoke_refresh_family(conn, row["family_id"])
        await audit.record(
            conn,
            "refresh_token_reused",
            subject_id=str(row["user_id"]),
            details={"family_revoked": revoked},
        )
        return RefreshOutcome(error=InvalidRefreshTokenError(_REFUSED))
    stale = row["token_version"] != row["current_version"] or row["status"] != "active"
    if stale or row["expires_at"] <= utcnow():
        await repo.revoke_refresh_family(conn, row["family_id"])
        return RefreshOutcome(error=InvalidRefreshTokenError(_REFUSED))
    await repo.mark_refresh_used(conn, row["token_id"])
    pair = await issue(
        conn,
        settings,
        row["user_id"],
        row["role"],
        family_id=row["family_id"],
        version=row["current_version"],
    )
    return RefreshOutcome(token=pair)
