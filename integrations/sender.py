"""One delivery attempt: sign, POST through the SSRF guard, read at most 4 KB of the answer."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from integrations import signing
from integrations.ssrf import BlockedDestinationError

if TYPE_CHECKING:
    from integrations.config import WebhookConfig
    from kernel.crypto import SecretBox

__all__ = ["MAX_RESPONSE_BYTES", "Attempt", "post", "secrets_in_use"]

MAX_RESPONSE_BYTES = 4096
_USER_AGENT = "corp-astro-webhooks/1"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What an attempt got: a status code and the start of the body, or an error; and how long it took."""

    code: int | None
    body: str | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """A 2xx answer (anything else, 3xx included, is a failure)."""
        return self.code is not None and 200 <= self.code < 300


def secrets_in_use(box: SecretBox, delivery: Any, now: dt.datetime) -> list[str]:
    """The endpoint's secret, and during a rotation the previous one while it has not expired."""
    found = [box.open(delivery["secret"])]
    expires = delivery["previous_secret_expires_at"]
    if delivery["previous_secret"] and expires is not None and expires > now:
        found.append(box.open(delivery["previous_secret"]))
    return found


def _text(raw: bytes) -> str:
    # PostgreSQL text cannot hold U+0000.
    return raw[:MAX_RESPONSE_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd")


async def _exchange(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes) -> Attempt:
    started = time.perf_counter()
    async with client.stream("POST", url, content=body, headers=headers) as response:
        buf = bytearray()
        async for chunk in response.aiter_raw():
            buf += chunk
            if len(buf) >= MAX_RESPONSE_BYTES:
                break
        return Attempt(response.status_code, _text(bytes(buf)), None, time.perf_counter() - started)


async def post(
    client: httpx.AsyncClient, config: WebhookConfig, url: str, headers: dict[str, str], body: bytes
) -> Attempt:
    """POST ``body`` once; never raises for anything the receiver or the network does."""
    started = time.perf_counter()
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (scheme == "http" and config.allow_http):
        return Attempt(None, None, f"refused: {scheme}:// targets are not allowed", 0.0)
    timeout = config.numbers.timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(client, url, {**headers, "user-agent": _USER_AGENT}, body)
    except BlockedDestinationError as exc:
        error = f"refused: {exc}"
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except (httpx.HTTPError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    return Attempt(None, None, error, time.perf_counter() - started)


def signed_headers(secrets: list[str], msg_id: str, body: bytes) -> dict[str, str]:
    """The ``webhook-*`` headers of an attempt made now."""
    return signing.headers(secrets, msg_id, int(time.time()), body)
