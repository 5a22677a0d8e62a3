"""``corp-astro workflows run-due [--now TIMESTAMP] | list | show ID``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import click
import msgspec

from integrations.workflows import jobs, service, timing
from integrations.workflows.errors import ExecutionNotFoundError, WorkflowNotFoundError
from kernel.cli import with_database

__all__ = ["register", "workflows_group"]


class _Instant(click.ParamType):  # type: ignore[type-arg]
    name = "TIMESTAMP"

    def convert(self, value: Any, param: Any, ctx: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return timing.parse_instant(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 timestamp (2026-12-01T09:00, with or without a zone)")


@click.group("workflows")
def workflows_group() -> None:
    """Workflows: run due steps, list workflows, show a workflow or an execution."""


@workflows_group.command("run-due")
@click.option(
    "--now", type=_Instant(), default=None, help="Run every step due by TIMESTAMP (UTC if no zone)."
)
def run_due_cmd(now: dt.datetime | None) -> None:
    """Match new events, fire due schedules and run every step due by now (or --now), until none is."""
    stats = with_database(lambda db: jobs.run_due(db, now), max_size=2)
    click.echo(stats.line())


@workflows_group.command("list")
def list_cmd() -> None:
    """Every workflow: id, status, trigger, version and name."""

    async def work(db: Any) -> list[Any]:
        async with db.pool.acquire() as conn:
            items: list[Any] = []
            cursor = None
            while True:
                page = await service.list_workflows(conn, cursor=cursor, limit=200, status=None)
                items += page.items
                if page.next_cursor is None:
                    return items
                cursor = page.next_cursor

    for w in with_database(work):
        click.echo(f"{w.workflow_id}  {w.status:8}  {w.trigger_type:8}  v{w.version:<3}  {w.name}")


@workflows_group.command("show")
@click.argument("item_id", type=click.UUID)
def show_cmd(item_id: uuid.UUID) -> None:
    """A workflow with its latest executions, or an execution with its steps (JSON)."""

    async def work(db: Any) -> Any:
        async with db.pool.acquire() as conn:
            try:
                return await service.execution(conn, item_id)
            except ExecutionNotFoundError:
                pass
            try:
                workflow = await service.get(conn, item_id)
            except WorkflowNotFoundError:
                return None
            page = await service.executions(conn, item_id, cursor=None, limit=20, status=None)
            return {"workflow": workflow, "executions": page.items}

    found = with_database(work)
    if found is None:
        raise click.ClickException(f"No workflow or execution {item_id}.")
    click.echo(json.dumps(json.loads(msgspec.json.encode(found)), indent=2))


def register(main: click.Group) -> None:
    """Attach the workflows commands."""
    main.add_command(workflows_group)
