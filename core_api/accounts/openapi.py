"""The accounts routes in the OpenAPI document: what the public auth routes answer besides success."""

from __future__ import annotations

from kernel.openapi import Operation

__all__ = ["operations"]

operations: dict[str, Operation] = {
    # 409: the email is taken; 429: too many registrations from the address, or in all.
    "POST /v1/auth/register": Operation(errors=(409, 429)),
    # 401: wrong email or password (one answer for both); 429: failed logins back off.
    "POST /v1/auth/login": Operation(errors=(401,)),
    # 401: the refresh token is unknown, expired, spent or revoked.
    "POST /v1/auth/refresh": Operation(errors=(401,)),
    # 201 for a new push token, 200 when a known one is refreshed.
    "POST /v1/users/me/devices": Operation(also=(200,)),
    # 404: the body's ``user_id`` names no account.
    "POST /v1/subscriptions": Operation(errors=(404,)),
}
