"""Prometheus metrics (``prometheus-client``): ``GET /metrics``, the HTTP and job metrics, and the
convention by which domains add theirs (docs/metrics.md).

- A domain's ``metrics`` module defines its metric objects at import with :func:`counter`,
  :func:`gauge` and :func:`histogram` (no-ops when ``CORP_ASTRO_METRICS=0``), records into them where
  the work happens (once per request or flush, with counts: never once per event), and may expose
  ``register_metrics(registry: MetricsRegistry)`` to add values computed at scrape time: from the
  database (``on_scrape``: global values, each under a statement timeout) or from this process's state
  (``per_process``: queue lengths, pool use).
- Several workers (``serve --workers N``): ``PROMETHEUS_MULTIPROC_DIR`` is set by ``serve`` before the
  workers start; each writes its values to its own files there and a scrape, whichever worker answers
  it, sums them (prometheus-client's multi-process mode). Per-process gauges are refreshed every few
  seconds in every worker, and a worker's live gauges are dropped when it exits (``mark_process_dead``).
- Protection: ``CORP_ASTRO_METRICS_TOKEN`` set: ``Authorization: Bearer <token>`` is required (401);
  unset: only loopback clients (403), the client address resolved as everywhere else
  (``kernel.auth.client_ip``: X-Forwarded-For only from ``CORP_ASTRO_TRUSTED_PROXIES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram

from kernel.auth import client_ip, forwarded_for
from kernel.errors import AuthenticationError, PermissionDeniedError
from kernel.settings import get_settings

if TYPE_CHECKING:
    import asyncpg
    from litestar.datastructures import State

__all__ = [
    "MULTIPROC_ENV",
    "MetricsRegistry",
    "counter",
    "enabled",
    "gauge",
    "histogram",
    "mark_dead",
    "metrics_route",
    "observe_http",
    "record_job",
    "sampling",
]

_log = logging.getLogger("corp_astro.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Read once per process, like the serving limits: the metric objects are made at import.
_ENABLED = get_settings().metrics_enabled
# One scrape's database work: each collector's statements, and the whole of it.
STATEMENT_TIMEOUT_MS = 2000
SCRAPE_TIMEOUT = 5.0
SAMPLE_SECONDS = 5.0
UNMATCHED = "unmatched"


def enabled() -> bool:
    """Whether this process records metrics (``CORP_ASTRO_METRICS``, on by default)."""
    return _ENABLED


class _Off:
    """What a metric is when metrics are off: every call does nothing."""

    def labels(self, *_args: Any, **_kwargs: Any) -> _Off:
        return self

    def inc(self, amount: float = 1.0) -> None:
        return None

    def observe(self, amount: float) -> None:
        return None

    def set(self, value: float) -> None:
        return None


_OFF = _Off()


def counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
    """A counter (``name`` ends in ``_total``), or a no-op when metrics are off."""
    return _Counter(name.removesuffix("_total"), documentation, labels) if _ENABLED else _OFF


def histogram(
    name: str, documentation: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None
) -> Any:
    """A histogram (``buckets``: prometheus-client's defaults, in seconds, when None)."""
    if not _ENABLED:
        return _OFF
    if buckets is None:
        return _Histogram(name, documentation, labels)
    return _Histogram(name, documentation, labels, buckets=buckets)


def gauge(name: str, documentation: str, labels: tuple[str, ...] = (), mode: str = "livesum") -> Any:
    """A gauge; ``mode`` says how several workers' values combine: ``livesum`` for this process's
    share of a total (a queue, a pool), ``mostrecent`` for one value computed at scrape."""
    return _Gauge(name, documentation, labels, multiprocess_mode=mode) if _ENABLED else _OFF  # type: ignore[arg-type]


OnScrape = Callable[["asyncpg.Connection", "State"], Awaitable[None]]
PerProcess = Callable[["State"], None]


@dataclass(slots=True)
class MetricsRegistry:
    """What domains add at start-up through their ``metrics.register_metrics(registry)``."""

    scrapers: list[tuple[str, OnScrape]] = field(default_factory=list)
    samplers: list[PerProcess] = field(default_factory=list)

    def on_scrape(self, name: str, fn: OnScrape) -> None:
        """Run ``fn(conn, state)`` at each scrape, in its own transaction under a statement timeout."""
        self.scrapers.append((name, fn))

    def per_process(self, fn: PerProcess) -> None:
        """Run ``fn(state)`` at each scrape and, with several workers, every few seconds in each."""
        self.samplers.append(fn)


# --- The kernel's own metrics ---------------------------------------------------------------------

HTTP_REQUESTS = counter(
    "corp_astro_http_requests_total",
    "HTTP requests by route template (unmatched paths as one label) and status.",
    ("route", "status"),
)
HTTP_SECONDS = histogram(
    "corp_astro_http_request_duration_seconds",
    "Time from the request's arrival at the app to the end of its response.",
    ("route",),
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
JOB_RUNS = counter("corp_astro_job_runs_total", "Scheduled job runs by job and outcome.", ("job", "outcome"))
JOB_SECONDS = histogram(
    "corp_astro_job_duration_seconds",
    "Scheduled job run time.",
    ("job",),
    (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0),
)
JOB_LAST_SUCCESS = gauge(
    "corp_astro_job_last_success_timestamp_seconds",
    "Unix time of each job's last run that ended without an error.",
    ("job",),
    mode="mostrecent",
)
POOL_IN_USE = gauge("corp_astro_db_pool_connections_in_use", "Pooled connections handed out.")
POOL_WAITING = gauge("corp_astro_db_pool_waiting", "Tasks waiting for a pooled connection.")
WORKERS = gauge("corp_astro_worker_processes", "Server processes whose values this scrape sums.")
SCRAPE_ERRORS = counter(
    "corp_astro_metrics_collector_errors_total",
    "Scrape-time collectors that failed or timed out (their values keep their last reading).",
    ("collector",),
)

_children: dict[tuple[str, int], tuple[Any, Any]] = {}


def _record_http(route: str, status: int, seconds: float) -> None:
    pair = _children.get((route, status))
    if pair is None:
        pair = _children[(route, status)] = (
            HTTP_REQUESTS.labels(route, str(status)),
            HTTP_SECONDS.labels(route),
        )
    pair[0].inc()
    pair[1].observe(seconds)


@functools.lru_cache(maxsize=64)
def fast_template(regex: str) -> str:
    """A fast route's path regex as a template: ``/v1/experiments/(?P<name>[^/]+)/x/?`` ->
    ``/v1/experiments/{name}/x``."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", regex).removesuffix("/?")
    return path.replace("\\", "")


async def observe_http(
    call: Callable[[Any, Any, Any], Awaitable[None]], scope: Any, receive: Any, send: Any
) -> None:
    """Serve the request through ``call`` and count it under its route template and status."""
    start = time.perf_counter()
    status = 0

    async def send_status(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await call(scope, receive, send_status)
    finally:
        fast = scope.get("corp_astro.fast_route")
        route = fast_template(fast) if fast else scope.get("path_template") or UNMATCHED
        _record_http(route, status, time.perf_counter() - start)


def record_job(job: str, ok: bool, seconds: float) -> None:
    """One run of a scheduled job."""
    JOB_RUNS.labels(job, "success" if ok else "error").inc()
    JOB_SECONDS.labels(job).observe(seconds)
    if ok:
        JOB_LAST_SUCCESS.labels(job).set(time.time())


# --- Scrape ---------------------------------------------------------------------------------------


def _pool_sampler(state: State) -> None:
    db = getattr(state, "db", None)
    pool = getattr(db, "_pool", None) if db is not None else None
    if pool is None:
        return
    POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
    # asyncpg keeps no public count of waiters: its queue's pending getters are they.
    getters = getattr(getattr(pool, "_queue", None), "_getters", ())
    POOL_WAITING.set(sum(1 for f in getters if not f.done()))


def _authorize(request: Request[Any, Any, Any]) -> None:
    settings = request.app.state.settings
    token: str | None = settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise AuthenticationError("GET /metrics needs Authorization: Bearer <CORP_ASTRO_METRICS_TOKEN>.")
        return
    peer = request.client.host if request.client else None
    ip = client_ip(peer, forwarded_for(request.headers), settings.trusted_proxies)
    with contextlib.suppress(ValueError):
        if ip is not None and ipaddress.ip_address(ip).is_loopback:
            return
    raise PermissionDeniedError(
        "GET /metrics answers only loopback clients; set CORP_ASTRO_METRICS_TOKEN to scrape from elsewhere."
    )


async def _run_scrapers(state: State, registry: MetricsRegistry) -> None:
    async with state.db.pool.acquire(timeout=SCRAPE_TIMEOUT) as conn:
        for name, fn in registry.scrapers:
            try:
                async with asyncio.timeout(SCRAPE_TIMEOUT), conn.transaction(readonly=True):
                    await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                    await fn(conn, state)
            except Exception as exc:  # one failing collector must not hide the others
                _log.warning("metrics collector %s failed: %s: %s", name, type(exc).__name__, exc)
                SCRAPE_ERRORS.labels(name).inc()


def _sample(state: State, registry: MetricsRegistry) -> None:
    for fn in (_pool_sampler, *registry.samplers):
        try:
            fn(state)
        except Exception as exc:
            _log.warning("metrics sampler failed: %s: %s", type(exc).__name__, exc)


def exposition() -> bytes:
    """Every metric in the text format: this process's, or every worker's summed in multi-process mode."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@get("/metrics", include_in_schema=False)
async def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The Prometheus scrape (protected: a bearer token, or loopback clients only)."""
    _authorize(request)
    state = request.app.state
    registry: MetricsRegistry = state.metrics_registry
    _sample(state, registry)
    try:
        await _run_scrapers(state, registry)
    except (TimeoutError, OSError) as exc:  # no pooled connection in time: the counters still answer
        _log.warning("metrics scrape without the database: %s", type(exc).__name__)
        SCRAPE_ERRORS.labels("database").inc()
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST, status_code=200)


@contextlib.asynccontextmanager
async def sampling(state: State, registry: MetricsRegistry) -> Any:
    """A worker's life in multi-process mode: it counts itself, refreshes its per-process gauges every
    few seconds, and its live gauges are dropped when it exits."""
    WORKERS.set(1)
    multi = bool(os.environ.get(MULTIPROC_ENV))
    if multi and _ENABLED:
        _forget_dead_workers(os.environ[MULTIPROC_ENV])

    async def loop() -> None:
        while True:
            _sample(state, registry)
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(loop(), name="metrics-sampler") if multi and _ENABLED else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if multi and _ENABLED:
            mark_dead(os.getpid())


def mark_dead(pid: int) -> None:
    """Drop a worker's live gauges (multi-process mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _forget_dead_workers(directory: str) -> None:
    """A worker that died without a shutdown (uvicorn starts another): its live gauges are dropped by
    the next worker to start, so a dead process's queue is not summed forever."""
    pids = {
        int(m.group(1)) for p in os.listdir(directory) if (m := re.match(r"gauge_live\w+?_(\d+)\.db$", p))
    }
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_dead(pid)
        except PermissionError:
            continue
