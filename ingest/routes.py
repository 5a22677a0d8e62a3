"""The Segment HTTP Tracking API: ``/v1/batch`` (alias ``/v1/b``) and the six single-call routes.

In the running app the kernel's fast path serves them (``fast_routes``: no Litestar request, signature
model or response object per request, which cost about as much CPU as mapping a few events); the Litestar
handlers below document them in the OpenAPI schema and serve them where no fast path is installed. Both
run ``_collect`` with the same inputs, so limits, auth, errors and metrics are the same on either.
"""

from __future__ import annotations

import gc
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, post

from ingest import service
from ingest.schemas import IngestResponse
from kernel.auth import Source, authenticate_caller, client_ip, forwarded_for
from kernel.fastpath import FastRequest, FastResponse, FastRoute

__all__ = ["fast_routes", "on_shutdown", "on_startup", "route_handlers"]

_encoder = msgspec.json.Encoder()


async def on_startup(app: Litestar) -> None:
    """Start the group-commit flushers."""
    # Ingest allocates many short-lived tuples (rows) while the process holds a large, long-lived heap
    # (every imported library). Freezing that heap keeps full collections from rescanning it, and a
    # larger first-generation threshold collects the rows' garbage in fewer, cheaper passes.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    collector = service.Collector.start(app.state.db, app.state.settings.ingest)
    # Shared by every route that accepts an app's write key (ingest, experiment assignment).
    app.state.write_keys = collector.write_keys
    app.state.ingest = collector


async def on_shutdown(app: Litestar) -> None:
    """Flush what is queued, then stop."""
    collector: service.Collector | None = getattr(app.state, "ingest", None)
    if collector is not None:
        await collector.close()


async def _collect(
    state: Any, call: str | None, headers: Any, peer: str | None, forwarded: str | None, receive: Any
) -> IngestResponse:
    # A key in the Authorization header is checked before the body is read: a bad key costs nothing.
    caller = await authenticate_caller(state, headers.get("authorization"), bearer=False)
    return await service.collect(
        state.ingest,
        call,
        caller if isinstance(caller, Source) else None,
        receive,
        content_encoding=headers.get("content-encoding"),
        content_length=headers.get("content-length"),
        peer_ip=client_ip(peer, forwarded, state.settings.trusted_proxies),
        user_agent=headers.get("user-agent"),
    )


async def _handle(request: Request[Any, Any, Any], call: str | None) -> Response[bytes]:
    headers = request.headers
    peer = request.client.host if request.client else None
    result = await _collect(request.app.state, call, headers, peer, forwarded_for(headers), request.receive)
    return Response(content=_encoder.encode(result), status_code=200, media_type=MediaType.JSON)


def _fast(call: str | None) -> Any:
    async def handle(request: FastRequest) -> FastResponse:
        scope = request.scope
        client = scope.get("client")
        # Every X-Forwarded-For line, in order (as ``forwarded_for`` reads them from Litestar's headers).
        lines = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        forwarded = ",".join(lines) if lines else None
        peer = client[0] if client else None
        result = await _collect(request.state, call, request.headers, peer, forwarded, request.receive)
        return FastResponse(200, result)

    return handle


_OPTS: dict[str, Any] = {"status_code": 200, "tags": ["ingest"], "media_type": MediaType.JSON}


@post(["/v1/batch", "/v1/b"], **_OPTS)
async def batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    """A Segment batch: ``{"batch": [...], "sentAt", "writeKey"?, "context"?, "integrations"?}``."""
    return await _handle(request, None)


@post("/v1/track", **_OPTS)
async def track(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One Segment track call."""
    return await _handle(request, "track")


@post("/v1/identify", **_OPTS)
async def identify(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One Segment identify call."""
    return await _handle(request, "identify")


@post("/v1/page", **_OPTS)
async def page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One Segment page call."""
    return await _handle(request, "page")


@post("/v1/screen", **_OPTS)
async def screen(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One Segment screen call."""
    return await _handle(request, "screen")


@post("/v1/group", **_OPTS)
async def group(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One Segment group call."""
    return await _handle(request, "group")


@post("/v1/alias", **_OPTS)
async def alias(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One Segment alias call."""
    return await _handle(request, "alias")


route_handlers: list[Any] = [batch, track, identify, page, screen, group, alias]

# One fast route per path, so that each keeps its own label in the HTTP metrics.
fast_routes: list[FastRoute] = [
    FastRoute("POST", path, _fast(call), own_body=True)
    for path, call in (
        ("/v1/batch", None),
        ("/v1/b", None),
        ("/v1/track", "track"),
        ("/v1/identify", "identify"),
        ("/v1/page", "page"),
        ("/v1/screen", "screen"),
        ("/v1/group", "group"),
        ("/v1/alias", "alias"),
    )
]
