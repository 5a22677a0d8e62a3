"""The Litestar application factory.

Each domain contributes a ``routes`` module with ``route_handlers`` and, optionally, ``on_startup`` /
``on_shutdown`` coroutines taking the app; a ``jobs`` module may expose ``register_jobs(scheduler, app)``.
The domains come from the caller (``corp_astro.DOMAINS``, the registry): the kernel imports no domain
module by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import time
from contextlib import asynccontextmanager
from os import PathLike
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import asyncpg
from litestar import Litestar, Request
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.template.config import TemplateConfig

from kernel import docs, health, metrics
from kernel.auth import AuthUser
from kernel.db import Database, resolve_database_url
from kernel.deps import SKIP_COMPRESSION, dependencies
from kernel.fastpath import FastRoute, FastRouter
from kernel.hashing import PasswordHashing
from kernel.http_errors import exception_handlers
from kernel.observability import RequestIdMiddleware, configure_logging
from kernel.openapi import merge_operations
from kernel.scheduler import (
    LOCK_ENV,
    NamedJobScheduler,
    create_scheduler,
    start_if_elected,
    start_when_elected,
    stop_at_safe_point,
)
from kernel.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

__all__ = ["App", "create_app", "domain_modules"]

_log = logging.getLogger("corp_astro.app")
# The share of the shutdown grace period (CORP_ASTRO_SHUTDOWN_GRACE_SECONDS) in which the server lets
# in-flight requests finish (uvicorn's timeout_graceful_shutdown); the rest is the lifespan's.
SERVER_SHARE = 0.6


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
    """Litestar, with the domains' fast routes (``kernel.fastpath``) served ahead of its routing."""

    fast: FastRouter | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve a fast route's request directly; everything else (lifespan included) as Litestar does.

        Every HTTP response, whichever stack answers it (Litestar's own 404 and 405 included), gets the
        security headers here.
        """
        if scope["type"] == "http":
            send = _with_security_headers(send)
            if metrics.enabled():
                await metrics.observe_http(self._dispatch, scope, receive, send)
                return
        await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        fast = self.fast
        if fast is not None and fast.match(scope):
            scope["app"] = scope["litestar_app"] = self
            scope.setdefault("state", {})
            scope["corp_astro.fast_route"] = scope["corp_astro.fast_match"][0].path  # the metrics' label
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def domain_modules(domains: Sequence[str], kind: str) -> list[ModuleType]:
    """Each domain's ``kind`` module (``routes``, ``jobs``, ``cli``, ``hooks``) that exists, in order."""
    return [m for m in (_optional_module(f"{d}.{kind}") for d in domains) if m]


def _lifespan(
    settings: Settings, domains: Sequence[str], routes_modules: list[ModuleType]
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: the pool, shared state, each domain's start-up, the scheduled jobs."""
    jobs_modules = domain_modules(domains, "jobs")
    metrics_modules = [m for m in domain_modules(domains, "metrics") if hasattr(m, "register_metrics")]
    erase_hooks = [m.on_user_erased for m in domain_modules(domains, "hooks") if hasattr(m, "on_user_erased")]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = Database(resolve_database_url(settings), max_size=settings.db_pool_max)
        await db.open()
        app.state.db = db
        app.state.settings = settings
        # Account erasure asks every domain to erase or unlink the user's rows in its own tables.
        app.state.user_erased_hooks = erase_hooks
        limits = settings.auth_limits
        app.state.hashing = PasswordHashing(limits.hash_workers or None, limits.hash_queue)
        registry = app.state.metrics_registry = metrics.MetricsRegistry()
        for module in metrics_modules:
            module.register_metrics(registry)
        started: list[ModuleType] = []
        scheduler = create_scheduler()
        app.state.scheduler = scheduler
        election: asyncio.Task[None] | None = None
        try:
            for module in routes_modules:
                if hasattr(module, "on_startup"):
                    await module.on_startup(app)
                started.append(module)
            if settings.scheduler_enabled:
                for module in jobs_modules:
                    module.register_jobs(scheduler, app)
                lock = os.environ.get(LOCK_ENV)
                if not start_if_elected(scheduler, lock) and lock is not None:
                    election = asyncio.create_task(start_when_elected(scheduler, lock))
            _log.info("app started", extra={"scheduler": settings.scheduler_enabled})
            async with metrics.sampling(app.state, registry):
                yield
        finally:
            await _shutdown(app, scheduler, election, started, settings.shutdown_grace_seconds)
            await db.close()
            app.state.hashing.close()

    return lifespan


async def _shutdown(
    app: Litestar,
    scheduler: NamedJobScheduler,
    election: asyncio.Task[None] | None,
    started: list[ModuleType],
    grace: float,
) -> None:
    """After the server stopped accepting and its in-flight requests ended (``serve`` gives those
    ``SERVER_SHARE`` of the grace period): jobs stop at a safe point, then each domain stops (ingest
    flushes and commits its queue), all within the rest of the grace period."""
    budget = grace * (1 - SERVER_SHARE)
    deadline = time.monotonic() + budget
    if election is not None:
        election.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await election
    await stop_at_safe_point(scheduler, budget / 2)
    for module in reversed(started):
        if hasattr(module, "on_shutdown"):
            try:
                async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                    await module.on_shutdown(app)
            except TimeoutError:
                _log.error("shutdown of %s exceeded the grace period", module.__name__)


def _template_config(directories: list[Path]) -> TemplateConfig[Any] | None:
    """Jinja (autoescaping) over the domains' template folders; none when no domain renders HTML."""
    if not directories:
        return None
    from litestar.plugins.jinja import JinjaTemplateEngine

    searched: list[Path | PathLike[Any] | str] = [*directories]
    return TemplateConfig(directory=searched, engine=JinjaTemplateEngine)


def create_app(settings: Settings | None, domains: Sequence[str]) -> App:
    """Build the app over ``domains`` (the registry's). The database pool opens in the lifespan, so the
    factory itself does no I/O."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, fmt=settings.log_format, access=settings.access_log)

    route_handlers: list[Any] = [*health.route_handlers, docs.assets_router()]
    if metrics.enabled() and settings.metrics_enabled:
        route_handlers.append(metrics.metrics_route)
    routes_modules = domain_modules(domains, "routes")
    fast_routes: list[FastRoute] = []
    template_dirs: list[Path] = []
    for module in routes_modules:
        route_handlers.extend(module.route_handlers)
        fast_routes.extend(getattr(module, "fast_routes", ()))
        # A domain that renders HTML names its Jinja template folders (Litestar's template engine).
        template_dirs.extend(getattr(module, "template_directories", ()))

    app = App(
        route_handlers=route_handlers,
        dependencies=dependencies,
        exception_handlers=exception_handlers,
        middleware=[RequestIdMiddleware],
        lifespan=[_lifespan(settings, domains, routes_modules)],
        openapi_config=docs.openapi_config(
            "Corp Astro analytics API",
            "0.1.0",
            merge_operations(domain_modules(domains, "openapi")),
        ),
        # Hot handlers whose bodies are always under minimum_size opt out (``opt={SKIP_COMPRESSION: True}``):
        # they would never be compressed, and the middleware's header parsing costs on every request.
        template_config=_template_config(template_dirs),
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
        # Our logging (configure_logging) stays in charge instead of Litestar's default config.
        logging_config=None,
        debug=False,
    )
    if fast_routes:
        app.fast = FastRouter(fast_routes, lambda: app.state)
    return app
