"""Helpers of the workflow tests: definitions, creation through the API, the runner on its own pool."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.testing import AsyncTestClient

from integrations.workflows import jobs
from integrations.workflows.config import RunnerConfig
from kernel.db import Database
from tests.integration.core.conftest import Actor

RUNNER = RunnerConfig(poll_seconds=0.1, settle_seconds=0.0, batch=100)


def step(name: str, type_: str, **input_: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "input": input_}


async def create_workflow(
    client: AsyncTestClient[Any],
    admin: Actor,
    steps: list[dict[str, Any]],
    trigger_type: str = "manual",
    trigger_config: dict[str, Any] | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    body = {
        "name": "wf",
        "definition": {"steps": steps},
        "trigger_type": trigger_type,
        "trigger_config": trigger_config or {},
    }
    r = await client.post("/v1/workflows", json=body, headers=admin.headers)
    assert r.status_code == expect, r.text
    return dict(r.json())


async def run_due(database_url: str, now: dt.datetime | None = None, **kwargs: Any) -> jobs.RunStats:
    db = Database(database_url, max_size=2)
    await db.open()
    try:
        return await jobs.run_due(db, now, RUNNER, **kwargs)
    finally:
        await db.close()
