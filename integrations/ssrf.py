"""The SSRF guard: webhook requests go only to public addresses, checked at connect time.

The target's name is resolved when a connection is opened (never at subscription time only), every
address it resolves to is checked, and the connection goes to a checked address: a DNS rebind between
the check and the connect cannot slip through, because there is no second lookup. TLS still verifies
the certificate against the URL's name (httpcore does the handshake with the origin's host).

Refused unless ``CORP_ASTRO_WEBHOOK_ALLOW_NETS`` allows them: loopback, private, link-local, CGNAT,
multicast, unspecified, reserved, documentation and benchmarking ranges, cloud metadata addresses, and
IPv6 forms that embed an IPv4 address (IPv4-mapped addresses are unwrapped and checked as IPv4; NAT64,
6to4 and Teredo are refused outright). Python's ``is_global`` alone is not enough on every 3.11 patch
release (100.64/10, 192.0.0.192 and NAT64 forms vary), so the ranges are listed here explicitly.
Redirects are never followed and environment proxies are ignored (``trust_env=False``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["BlockedDestinationError", "GuardedBackend", "Resolver", "guarded_transport", "refusal"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> every address the name resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DENY: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(net), label)
    for net, label in (
        ("169.254.169.254/32", "metadata"),
        ("169.254.170.2/32", "metadata"),
        ("100.100.100.200/32", "metadata"),
        ("192.0.0.192/32", "metadata"),
        ("fd00:ec2::254/128", "metadata"),
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "cgnat"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "reserved"),
        ("64:ff9b::/96", "nat64"),
        ("64:ff9b:1::/48", "nat64"),
        ("2001::/32", "teredo"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)


class BlockedDestinationError(Exception):
    """The target resolves to an address webhooks may not reach (or to nothing)."""


def refusal(address: str, allow: Iterable[Network] = ()) -> str | None:
    """Why ``address`` is refused (``"loopback"``, ``"metadata"``, ...), or None when it may be reached."""
    ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    for net, label in _DENY:
        if ip.version == net.version and ip in net:
            return label
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "not global"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host`` from the system resolver, in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard in ``connect_tcp``: resolve, check every address,
    connect to a checked one. Literal addresses are checked before anything else happens."""

    def __init__(
        self,
        allow: Iterable[Network] = (),
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow = tuple(allow)
        self.resolver = resolver or system_resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses to dial for ``host``; ``BlockedDestinationError`` if any is refused."""
        literal = _literal(host)
        try:
            found = [literal] if literal is not None else await self.resolver(host, port)
        except OSError as exc:
            raise BlockedDestinationError(f"{host} does not resolve: {exc}") from exc
        if not found:
            raise BlockedDestinationError(f"{host} resolves to no address")
        for address in found:
            reason = refusal(address, self.allow)
            if reason is not None:
                raise BlockedDestinationError(f"{host} resolves to a {reason} address ({address})")
        return found

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address that answers."""
        error: Exception | None = None
        for address in await self.addresses(host, port):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        """Never: webhooks go over TCP only."""
        raise BlockedDestinationError("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        """The inner backend's sleep."""
        await self.inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: GuardedBackend, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx 0.28's transport takes no network backend: its pool is rebuilt with ours, same options.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def guarded_transport(
    allow: Iterable[Network] = (), resolver: Resolver | None = None, *, max_connections: int = 256
) -> httpx.AsyncBaseTransport:
    """An httpx transport whose every connection passes the guard."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return _GuardedTransport(GuardedBackend(allow, resolver), limits)
