"""Fixtures of the webhook tests: an admin, a verifying receiver on 127.0.0.1, the app with http://
targets and 127.0.0.0/8 allowed, and a dispatcher driven by the test (short retry schedule)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from corp_astro.app import create_app
from integrations.config import DeliveryNumbers, WebhookConfig
from integrations.dispatcher import Dispatcher
from kernel.crypto import SecretBox, secret_key
from kernel.db import Database
from kernel.settings import Settings
from tests.integration.core.conftest import Actor, make_user
from tests.integration.integrations.receiver import Receiver

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)
ENV = {
    "CORP_ASTRO_SECRET_KEY": "test-key-for-webhook-secrets-0123456789abcdef",
    "CORP_ASTRO_WEBHOOK_ALLOW_HTTP": "1",
    "CORP_ASTRO_WEBHOOK_ALLOW_NETS": "127.0.0.0/8",
    "CORP_ASTRO_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2",
}


def hook_config(**numbers: Any) -> WebhookConfig:
    """http:// and 127.0.0.0/8 allowed, retries after 0.2 s, 2 s timeout, no jitter."""
    values: dict[str, Any] = {"timeout_seconds": 2.0, "jitter": 0.0, "poll_seconds": 0.1, **numbers}
    return WebhookConfig(
        numbers=DeliveryNumbers(**values), retry_schedule=(0.0, 0.2, 0.2), allow_nets=LOCAL, allow_http=True
    )


@pytest.fixture
async def admin(conn: asyncpg.Connection, settings: Settings) -> Actor:
    return await make_user(conn, settings, role="admin")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
async def hooks(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app (no scheduler: the tests drive the dispatcher) with local http:// targets allowed."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


@pytest.fixture
async def dispatcher(settings: Settings, hooks: AsyncTestClient[Any]) -> AsyncIterator[Dispatcher]:
    """A dispatcher on its own pool, sharing the app's secret key (same data dir); not started: tests
    call ``run_once`` or ``start`` themselves."""
    db = Database(settings.database_url or "", max_size=4)
    await db.open()
    d = Dispatcher(db, hook_config(), SecretBox(secret_key(settings.data_dir)))
    try:
        yield d
    finally:
        await d.stop()
        await db.close()


async def subscribe(client: AsyncTestClient[Any], admin: Actor, url: str, **fields: Any) -> dict[str, Any]:
    body = {"client_id": "acme", "event_type": "*", "target_url": url, **fields}
    r = await client.post("/v1/webhooks", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())
