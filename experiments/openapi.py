"""The experiments routes in the OpenAPI document: the bodies the handlers decode themselves.

The handlers decode their bodies with ``experiments.schemas.decode`` (400 for JSON that does not parse,
422 for values that do not fit), so Litestar sees no body type; the Structs are named here instead.
Assignment and conversion take an app's write key (HTTP Basic username) or a user's Bearer token.
"""

from __future__ import annotations

from experiments.schemas import ExperimentCreate, ExperimentPatch, UserRef
from kernel.openapi import Operation

__all__ = ["operations"]

_APP_OR_USER = ("writeKey", "bearerAuth")

operations: dict[str, Operation] = {
    # 409: a duplicate experiment or variant name.
    "POST /v1/experiments": Operation(body=ExperimentCreate, errors=(409,)),
    # 409: a change a completed experiment no longer allows.
    "PATCH /v1/experiments/{name}": Operation(body=ExperimentPatch, errors=(409,)),
    # 409: the experiment is not running (paused, completed, not started or ended).
    "POST /v1/experiments/{name}/assignments": Operation(body=UserRef, security=_APP_OR_USER, errors=(409,)),
    # 409: the user was never assigned, or the experiment does not count conversions now.
    "POST /v1/experiments/{name}/conversions": Operation(body=UserRef, security=_APP_OR_USER, errors=(409,)),
    "GET /v1/users/{user_id}/assignments": Operation(security=_APP_OR_USER),
}
