"""Integrations domain: the seed's webhooks and workflows (tables only, until their issues land).

The public functions below purge this domain's logs for the retention policy (docs/schema.md).
"""

from __future__ import annotations

from integrations.repository import (
    count_webhook_deliveries_before,
    count_workflow_execution_steps_before,
    count_workflow_executions_before,
    purge_webhook_deliveries,
    purge_workflow_execution_steps,
    purge_workflow_executions,
)

__all__ = [
    "count_webhook_deliveries_before",
    "count_workflow_execution_steps_before",
    "count_workflow_executions_before",
    "purge_webhook_deliveries",
    "purge_workflow_execution_steps",
    "purge_workflow_executions",
]
