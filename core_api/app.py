"""The Litestar application factory.

Each domain contributes a ``routes`` module with ``route_handlers`` and, optionally, ``on_startup`` /
``on_shutdown`` coroutines taking the app; a ``jobs`` module may expose ``register_jobs(scheduler, app)``.
This is the one kernel module (with the CLI) that imports domain code.
"""

from __future__ import annotations

import importlib
import logging
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import asyncpg
from litestar import Litestar, Request, Router, get
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from core_api import health
from core_api.auth import AuthUser, WriteKeyCache
from core_api.db import Database, resolve_database_url
from core_api.deps import SKIP_COMPRESSION, dependencies
from core_api.fastpath import FastRoute, FastRouter
from core_api.hashing import PasswordHashing
from core_api.http_errors import exception_handlers
from core_api.observability import RequestIdMiddleware, configure_logging
from core_api.scheduler import create_scheduler
from core_api.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["DOMAIN_MODULES", "App", "create_app"]

_log = logging.getLogger("corp_astro.app")

# Packages whose ``routes`` / ``jobs`` modules make up the app, in registration order.
DOMAIN_MODULES = (
    "core_api.accounts",
    "core_api.businesses",
    "core_api.reports",
    "core_api.notifications",
    "ingest",
    "experiments",
    "aggregation",
    "retention",
)


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing module is optional; a broken import inside one must fail loudly.
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise


# Browsers must not guess a type other than the one declared, and no response that did not choose its
# own caching (tokens, profiles, analytics) may be stored by a browser or a shared cache.
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")


def _with_security_headers(send: Any) -> Any:
    async def send_with_headers(message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), _NOSNIFF]
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append(_NO_STORE)
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


class App(Litestar):
    """Litestar, with the domains' fast routes (``core_api.fastpath``) served ahead of its routing."""

    fast: FastRouter | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve a fast route's request directly; everything else (lifespan included) as Litestar does.

        Every HTTP response, whichever stack answers it (Litestar's own 404 and 405 included), gets the
        security headers here.
        """
        if scope["type"] == "http":
            send = _with_security_headers(send)
        fast = self.fast
        if fast is not None and fast.match(scope):
            scope["app"] = scope["litestar_app"] = self
            scope.setdefault("state", {})
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


@get("/{path:str}", include_in_schema=False, sync_to_thread=False)
def _schema_not_found() -> None:
    """Unknown paths under /schema: Litestar's own handler answers with an HTML page, not our JSON error."""
    raise NotFoundException("No such documentation page; see /schema or /schema/openapi.json.")


def create_app(settings: Settings | None = None) -> App:
    """Build the app. The database pool opens in the lifespan, so the factory itself does no I/O."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    route_handlers: list[Any] = list(health.route_handlers)
    routes_modules = [m for m in (_optional_module(f"{d}.routes") for d in DOMAIN_MODULES) if m]
    jobs_modules = [m for m in (_optional_module(f"{d}.jobs") for d in DOMAIN_MODULES) if m]
    fast_routes: list[FastRoute] = []
    for module in routes_modules:
        route_handlers.extend(module.route_handlers)
        fast_routes.extend(getattr(module, "fast_routes", ()))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = Database(resolve_database_url(settings), max_size=settings.db_pool_max)
        await db.open()
        app.state.db = db
        app.state.settings = settings
        # Shared by every route that accepts an app's write key (ingest, experiment assignment).
        app.state.write_keys = WriteKeyCache()
        limits = settings.auth_limits
        app.state.hashing = PasswordHashing(limits.hash_workers or None, limits.hash_queue)
        started: list[ModuleType] = []
        scheduler = create_scheduler()
        app.state.scheduler = scheduler
        try:
            for module in routes_modules:
                if hasattr(module, "on_startup"):
                    await module.on_startup(app)
                started.append(module)
            if settings.scheduler_enabled:
                for module in jobs_modules:
                    module.register_jobs(scheduler, app)
                scheduler.start()
            _log.info("app started", extra={"scheduler": settings.scheduler_enabled})
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            for module in reversed(started):
                if hasattr(module, "on_shutdown"):
                    await module.on_shutdown(app)
            await db.close()
            app.state.hashing.close()

    app = App(
        route_handlers=route_handlers,
        dependencies=dependencies,
        exception_handlers=exception_handlers,
        middleware=[RequestIdMiddleware],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Corp Astro analytics API",
            version="0.1.0",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            openapi_router=Router("/schema", route_handlers=[_schema_not_found], include_in_schema=False),
        ),
        # Hot handlers whose bodies are always under minimum_size opt out (``opt={SKIP_COMPRESSION: True}``):
        # they would never be compressed, and the middleware's header parsing costs on every request.
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=2048, exclude_opt_key=SKIP_COMPRESSION
        ),
        # Handlers may import these only under TYPE_CHECKING; Litestar resolves hints at runtime.
        signature_namespace={
            "asyncpg": asyncpg,
            "AuthUser": AuthUser,
            "Database": Database,
            "Request": Request,
            "Settings": Settings,
            "State": State,
        },
        # Our JSON logging (configure_logging) stays in charge instead of Litestar's default config.
        logging_config=None,
        debug=False,
    )
    if fast_routes:
        app.fast = FastRouter(fast_routes, lambda: app.state)
    return app
