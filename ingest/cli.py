"""``corp-astro keys ...`` (write keys of event sources) ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from kernel.db import Database, resolve_database_url
from kernel.settings import get_settings

__all__ = ["register"]

T = TypeVar("T")


def _run(fn: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        db = Database(resolve_database_url(get_settings()), max_size=2)
        await db.open()
        try:
            async with db.transaction() as conn:
                return await fn(conn)
        finally:
            await db.close()

    return asyncio.run(go())


@click.group()
def keys() -> None:
    """Write keys of event sources (apps sending Segment-style events)."""


@keys.command("create")
@click.argument("name")
def keys_create(name: str) -> None:
    """Create source NAME and print its write key (shown this once; only its hash is stored)."""
    from ingest import service

    created = _run(lambda conn: service.create_source(conn, name))
    click.echo(f"source_id: {created.source_id}")
    click.echo(f"name:      {created.name}")
    click.echo(f"write_key: {created.write_key}")
    click.echo("Store the key now: it cannot be shown again.", err=True)


@keys.command("list")
def keys_list() -> None:
    """List sources: id, name, key prefix, created, revoked."""
    from ingest import service

    rows = _run(service.list_sources)
    click.echo(f"{'source_id':36}  {'key_prefix':12}  {'created_at':19}  {'revoked_at':19}  name")
    for r in rows:
        revoked = r.revoked_at.isoformat(sep=" ", timespec="seconds") if r.revoked_at else "-"
        created = r.created_at.isoformat(sep=" ", timespec="seconds")
        click.echo(f"{r.source_id!s:36}  {r.key_prefix:12}  {created:19}  {revoked:19}  {r.name}")


@keys.command("revoke")
@click.argument("source_id")
def keys_revoke(source_id: str) -> None:
    """Revoke the write key of SOURCE_ID (servers stop accepting it within 5 s)."""
    from ingest import service
    from ingest.errors import SourceNotFound

    try:
        sid = uuid.UUID(source_id)
    except ValueError as exc:
        raise click.BadParameter("SOURCE_ID must be a UUID (see `corp-astro keys list`).") from exc
    try:
        out = _run(lambda conn: service.revoke_source(conn, sid))
    except SourceNotFound as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"revoked {out.source_id} ({out.name}) at {out.revoked_at}")


def register(main: click.Group) -> None:
    """Attach ``keys`` and ``bench ingest`` to the ``corp-astro`` CLI."""
    main.add_command(keys)
