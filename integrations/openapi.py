"""What the integrations routes' signatures cannot show (kernel.openapi): the workflows' inbound trigger
reads its own body and is signed with the workflow's secret instead of a Bearer token."""

from __future__ import annotations

from integrations.workflows.schemas import TriggerAccepted
from kernel.openapi import Operation

__all__ = ["operations"]

operations = {
    "POST /v1/workflows/{workflow_id}/trigger": Operation(
        body={"type": "object", "additionalProperties": True, "description": "The execution's trigger data."},
        body_required=False,
        response=TriggerAccepted,
        security=(),
        errors=(400, 401, 404, 409, 413, 422),
    ),
    "POST /v1/workflow-executions/{execution_id}/cancel": Operation(errors=(409,)),
    "POST /v1/workflow-executions/{execution_id}/retry": Operation(errors=(409,)),
    "POST /v1/workflows/{workflow_id}/executions": Operation(errors=(409,)),
}
