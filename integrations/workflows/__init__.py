"""Workflows (issue 17): definitions validated against a JSON Schema, triggers (ingested events,
schedules, signed inbound webhooks, manual), and durable executions run step by step by a runner that
claims due rows with ``FOR UPDATE SKIP LOCKED`` (docs/workflows.md)."""
