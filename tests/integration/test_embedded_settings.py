"""The embedded server runs with the settings ingest's sustained writes need (``kernel.embedded``)."""

from __future__ import annotations

import asyncpg
import pytest

from kernel.embedded import _SETTINGS
from tests.support import EmbeddedTestServer


async def test_the_embedded_server_has_its_checkpoint_and_vacuum_settings(
    embedded_pg: EmbeddedTestServer | None, server_url: str
) -> None:
    if embedded_pg is None:
        pytest.skip("TEST_DATABASE_URL points at another server, whose settings are its owner's")
    conn = await asyncpg.connect(server_url)
    try:
        for name, value in _SETTINGS.items():
            assert await conn.fetchval(f"SHOW {name}") == value
    finally:
        await conn.close()
