"""The aggregation routes in the OpenAPI document: the export download is a Parquet file, not JSON."""

from __future__ import annotations

from kernel.openapi import Operation

__all__ = ["operations"]

operations: dict[str, Operation] = {
    # 409: the export is not done yet (pending, running, failed or expired).
    "GET /v1/exports/{export_id}/download": Operation(
        response={"type": "string", "format": "binary", "description": "One zstd Parquet file."},
        media_type="application/vnd.apache.parquet",
        errors=(409,),
    ),
}
