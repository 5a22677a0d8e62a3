"""A lean HTTP path for the few hottest endpoints, in front of Litestar's routing.

Litestar's per-request machinery (request object, signature model, kwargs, response object) costs
more CPU than a whole first-time assignment does in PostgreSQL. A domain may therefore declare
``fast_routes``: an exact method and a path regex, served by a plain coroutine that gets the parsed
pieces (path parameters, headers, the body read under a size limit) and returns a status and a JSON
body. Everything else about the request stays the same as on the framework path:

- the request id and access log of :class:`~kernel.observability.RequestIdMiddleware`;
- errors go through the one mapping (:func:`kernel.http_errors.response_for`), so a domain error
  answers the same status and ``{"code", "message"}`` body on either path;
- a body over the route's limit is refused with 413 before it is read whole.

Requests that do not match (another method, another path) go to Litestar unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request

from kernel.body import ClientDisconnected, read_body
from kernel.errors import PayloadTooLargeError
from kernel.http_errors import response_for
from kernel.observability import RequestIdMiddleware

if TYPE_CHECKING:
    from litestar.datastructures import State
    from litestar.types import HTTPScope, Receive, Scope, Send

__all__ = ["FastRequest", "FastResponse", "FastRoute", "FastRouter"]

_JSON = (b"content-type", b"application/json")
_MATCH = "corp_astro.fast_match"
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class FastRequest:
    """What a fast handler gets: the app state, path parameters, headers (lower-case names), body."""

    state: State
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    # The ASGI scope (the peer, repeated header lines) and receive. For a route with ``own_body`` the
    # body is not read here (``body`` is empty): the handler reads it from ``receive`` itself.
    scope: Any = None
    receive: Any = None


@dataclass(frozen=True, slots=True)
class FastResponse:
    """A JSON answer: ``body`` is encoded with msgspec (a Struct, dict, list ...)."""

    status: int
    body: Any


FastHandler = Callable[[FastRequest], Awaitable[FastResponse]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """``method`` + a full-match ``path`` regex (named groups become ``params``) served by ``handler``."""

    method: str
    path: str
    handler: FastHandler
    max_body: int = 64 * 1024
    # The handler reads the body itself (``FastRequest.receive``), e.g. to refuse early or inflate gzip.
    own_body: bool = False


def _content_length(scope: HTTPScope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value
    return None


async def _send_json(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class FastRouter:
    """Matches the fast routes and serves them; ``match`` is cheap enough to run on every request."""

    def __init__(self, routes: Sequence[FastRoute], state: Callable[[], State]) -> None:
        self._routes = [(r.method, re.compile(r.path), r) for r in routes]
        self._state = state
        # Each fast request passes through the same request-id middleware as the framework path.
        self._serve_with_id = RequestIdMiddleware(self._serve)

    @property
    def routes(self) -> tuple[FastRoute, ...]:
        """The routes served here (each is also a Litestar route, which documents it)."""
        return tuple(route for _, _, route in self._routes)

    def match(self, scope: Any) -> bool:
        """Whether a fast route serves this request; if so the match is kept in the scope for ``__call__``."""
        if scope["type"] != "http":
            return False
        method, path = scope["method"], scope["path"]
        for m, rx, route in self._routes:
            if m == method and (found := rx.fullmatch(path)):
                scope[_MATCH] = (route, found)
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve_with_id(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        http: HTTPScope = scope  # type: ignore[assignment]
        route, m = scope.pop(_MATCH)  # type: ignore[misc]  # set by ``match``
        try:
            body = b""
            if not route.own_body:
                body = await read_body(
                    receive,
                    limit=route.max_body,
                    content_length=_content_length(http),
                    too_large=lambda: PayloadTooLargeError(route.max_body),
                )
            # A repeated header reads as its first value, as the framework path's ``Headers.get``.
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(list(http["headers"]))}
            out = await route.handler(
                FastRequest(self._state(), m.groupdict(), headers, body, scope, receive)
            )
            await _send_json(send, out.status, _encode(out.body))
        except ClientDisconnected:
            return
        except Exception as exc:  # every error answers through the one mapping
            await self._send_error(http, receive, send, exc)

    @staticmethod
    async def _send_error(scope: HTTPScope, receive: Receive, send: Send, exc: Exception) -> None:
        response = response_for(Request(scope, receive), exc)
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        await _send_json(send, response.status_code or 500, _encode(response.content), extra)
