"""The SSRF guard refuses every class of internal address, by literal and through a stub resolver,
before any connection is opened; only 127.0.0.1 (allowed explicitly) is ever dialled here."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest

from integrations.config import DeliveryNumbers, WebhookConfig
from integrations.sender import post
from integrations.ssrf import BlockedDestinationError, GuardedBackend, guarded_transport, refusal

REFUSED = {
    "loopback": ["127.0.0.1", "127.9.9.9", "::1"],
    "private": ["10.0.0.1", "172.16.5.4", "192.168.1.1", "fd12:3456::1"],
    "link-local": ["169.254.1.1", "fe80::1"],
    "cgnat": ["100.64.0.1", "100.127.255.254"],
    "multicast": ["224.0.0.1", "239.255.255.250", "ff02::1"],
    "unspecified": ["0.0.0.0", "0.1.2.3", "::"],  # noqa: S104  (addresses to refuse, not to bind)
    "metadata": ["169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254"],
    "reserved": ["240.0.0.1", "255.255.255.255", "192.0.0.8"],
    "documentation": ["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1"],
    "benchmarking": ["198.18.0.1"],
    "nat64": ["64:ff9b::a9fe:a9fe"],
    "6to4": ["2002:a9fe:a9fe::1"],
    "teredo": ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
}
# IPv4-mapped IPv6 is unwrapped and refused for what it wraps.
MAPPED = {"::ffff:169.254.169.254": "metadata", "::ffff:127.0.0.1": "loopback", "::ffff:10.1.2.3": "private"}
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
ALL_REFUSED = [a for group in REFUSED.values() for a in group] + list(MAPPED)


class CountingBackend(httpcore.AsyncNetworkBackend):
    """A real backend that records every address it is asked to dial."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.dialled: list[str] = []

    async def connect_tcp(
        self, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append(host)
        assert host == "127.0.0.1", "a test may only ever connect to 127.0.0.1"
        return await self.inner.connect_tcp(host, port, *args, **kwargs)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def stub_resolver(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


@pytest.mark.parametrize(("label", "address"), [(k, a) for k, v in REFUSED.items() for a in v])
def test_every_internal_class_is_refused(label: str, address: str) -> None:
    assert refusal(address) == label


@pytest.mark.parametrize(("address", "label"), MAPPED.items())
def test_ipv4_mapped_addresses_are_unwrapped(address: str, label: str) -> None:
    assert refusal(address) == label


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


def test_allow_nets_lets_a_range_through() -> None:
    allow = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.1.0.0/16")]
    assert refusal("127.0.0.1", allow) is None
    assert refusal("::ffff:127.0.0.1", allow) is None
    assert refusal("10.1.2.3", allow) is None
    assert refusal("10.2.0.1", allow) == "private"
    assert refusal("169.254.169.254", allow) == "metadata"


@pytest.mark.parametrize("address", ALL_REFUSED)
async def test_names_resolving_to_internal_addresses_are_never_dialled(address: str) -> None:
    counting = CountingBackend()
    backend = GuardedBackend(
        resolver=stub_resolver({"evil.example": ["93.184.216.34", address]}), inner=counting
    )
    with pytest.raises(BlockedDestinationError):
        await backend.connect_tcp("evil.example", 443)
    assert counting.dialled == []


@pytest.mark.parametrize("address", ALL_REFUSED)
async def test_literal_addresses_are_refused_before_any_connection(address: str) -> None:
    counting = CountingBackend()
    backend = GuardedBackend(resolver=stub_resolver({}), inner=counting)  # the resolver is never asked
    host = f"[{address}]" if ":" in address else address
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(network_backend=backend)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(BlockedDestinationError):
            await client.post(f"https://{host}/hook", content=b"{}")
    assert counting.dialled == []


class _Redirector(BaseHTTPRequestHandler):
    hits: list[str] = []
    hosts: list[str] = []

    def do_POST(self) -> None:
        _Redirector.hits.append(self.path)
        _Redirector.hosts.append(self.headers.get("host", ""))
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(302 if self.path == "/hook" else 200)
        self.send_header("location", "/elsewhere")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"hooks.test:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _config(allow_http: bool) -> WebhookConfig:
    return WebhookConfig(
        numbers=DeliveryNumbers(timeout_seconds=2.0),
        allow_nets=(ipaddress.ip_network("127.0.0.0/8"),),
        allow_http=allow_http,
    )


async def test_a_name_is_dialled_at_its_checked_address_and_redirects_are_not_followed(
    redirector: str,
) -> None:
    _Redirector.hits.clear()
    config = _config(allow_http=True)
    transport = guarded_transport(config.allow_nets, stub_resolver({"hooks.test": ["127.0.0.1"]}))
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        attempt = await post(client, config, f"http://{redirector}/hook", {}, json.dumps({}).encode())
    assert attempt.code == 302
    assert not attempt.ok
    assert _Redirector.hits == ["/hook"]
    assert _Redirector.hosts == [redirector]  # the name, though the connection went to 127.0.0.1


async def test_http_targets_need_the_setting(redirector: str) -> None:
    _Redirector.hits.clear()
    config = _config(allow_http=False)
    transport = guarded_transport(config.allow_nets, stub_resolver({"hooks.test": ["127.0.0.1"]}))
    async with httpx.AsyncClient(transport=transport) as client:
        attempt = await post(client, config, f"http://{redirector}/hook", {}, b"{}")
    assert attempt.code is None
    assert attempt.error is not None
    assert "http://" in attempt.error
    assert _Redirector.hits == []
