"""``corp-astro keys create/list/revoke``: the key is shown once, stored hashed, audited, and revocable."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator

import asyncpg
import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from corp_astro.cli import main
from kernel.settings import get_settings
from tests.integration.ingest.conftest import track
from tests.support import env


@pytest.fixture
def cli(database_url: str) -> Iterator[CliRunner]:
    with env(DATABASE_URL=database_url):
        get_settings.cache_clear()
        yield CliRunner()
    get_settings.cache_clear()


async def test_create_list_revoke(cli: CliRunner, conn: asyncpg.Connection, client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    created = await asyncio.to_thread(cli.invoke, main, ["keys", "create", "ios-app"])
    assert created.exit_code == 0, created.output
    key = re.search(r"write_key: (\S+)", created.output).group(1)  # type: ignore[union-attr]
    source_id = re.search(r"source_id: (\S+)", created.output).group(1)  # type: ignore[union-attr]
    row = await conn.fetchrow("SELECT * FROM api_sources")
    assert str(row["source_id"]) == source_id
    assert row["key_hash"] == hashlib.sha256(key.encode()).digest()
    assert key.startswith(row["key_prefix"])

    listed = await asyncio.to_thread(cli.invoke, main, ["keys", "list"])
    assert listed.exit_code == 0
    assert source_id in listed.output
    assert "ios-app" in listed.output
    assert key not in listed.output  # shown once, at creation only

    revoked = await asyncio.to_thread(cli.invoke, main, ["keys", "revoke", source_id])
    assert revoked.exit_code == 0, revoked.output
    assert await conn.fetchval("SELECT revoked_at IS NOT NULL FROM api_sources") is True
    r = await client.post("/v1/batch", json={"batch": [track("x")], "writeKey": key})
    assert r.status_code == 401

    audit = await conn.fetch(
        "SELECT action, subject_id, details::text AS d FROM audit_log ORDER BY created_at"
    )
    assert [a["action"] for a in audit] == ["key_created", "key_revoked"]
    assert all(a["subject_id"] == source_id for a in audit)
    assert all(key not in a["d"] for a in audit)  # the key never reaches the audit trail


def test_revoke_unknown_or_malformed(cli: CliRunner, database_url: str) -> None:
    missing = cli.invoke(main, ["keys", "revoke", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code != 0
    assert "No source" in missing.output
    bad = cli.invoke(main, ["keys", "revoke", "not-a-uuid"])
    assert bad.exit_code == 2
