"""The reports routes in the OpenAPI document: what they answer beyond what their signatures show."""

from __future__ import annotations

from kernel.openapi import Operation

__all__ = ["operations"]

operations: dict[str, Operation] = {
    # 404: the body's ``business_id`` names no business of the caller.
    "POST /v1/reports": Operation(errors=(404,)),
}
