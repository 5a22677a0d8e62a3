"""Logs carrying the request id (JSON lines, or one short text line each on a terminal), and the ASGI
middleware that assigns the id and writes the access log (all, none, or a sample).

Headers and bodies are never logged: they hold passwords, tokens and write keys.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import random
import re
import sys
import time
import uuid
from typing import IO, Any

import orjson
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from kernel.settings import AccessLog

__all__ = [
    "ACCESS_LOGGER",
    "JsonFormatter",
    "RequestIdMiddleware",
    "TextFormatter",
    "configure_logging",
    "job_var",
    "keep_access",
    "new_request_id",
    "request_id_var",
    "resolve_format",
]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The scheduled job a record was written by ("<domain>.<job>", set by kernel.scheduler).
job_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job", default=None)
ACCESS_LOGGER = "corp_astro.access"
_access = logging.getLogger(ACCESS_LOGGER)
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Which requests the access log records; set by configure_logging, read by the middleware per request.
_access_policy = AccessLog()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context (request id, job) and its ``extra`` fields."""
    entry: dict[str, Any] = {}
    rid = request_id_var.get()
    if rid:
        entry["request_id"] = rid
    job = job_var.get()
    if job:
        entry["job"] = job
    for key, value in record.__dict__.items():
        if key not in _STD_ATTRS and not key.startswith("_"):
            entry[key] = value
    return entry


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_BARE = re.compile(r"^[^\s\"=]*$")


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and _BARE.match(value) else orjson.dumps(value).decode()
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def access_line(fields: dict[str, Any]) -> str:
    """``200 GET /v1/batch 3.1 ms 127.0.0.1``: an access record's text message."""
    line = f"{fields.get('status')} {fields.get('method')} {fields.get('path')} {fields.get('ms', 0):.1f} ms"
    client = fields.get("client")
    return f"{line} {client}" if client else line


class TextFormatter(logging.Formatter):
    """One short line per record: UTC time, level, logger, message, then ``key=value`` extras.

    Access records read ``200 GET /v1/batch 3.1 ms 127.0.0.1``; a traceback follows on its own lines.
    """

    _second = -1
    _hms = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime a second, not one a record
            self._second, self._hms = second, time.strftime("%H:%M:%S", time.gmtime(second))
        stamp = f"{self._hms}.{int(record.msecs):03d}"
        name = record.name.removeprefix("corp_astro.")
        extras = _extras(record)
        extras.pop("color_message", None)  # uvicorn's message again, with terminal colour codes
        if record.name == ACCESS_LOGGER:
            message = access_line(extras)
        else:
            message = record.getMessage()
            if extras:
                message += " " + " ".join(f"{k}={_text_value(v)}" for k, v in extras.items())
        line = f"{stamp} {record.levelname:<7} {name}: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def resolve_format(fmt: str, stream: IO[str]) -> str:
    """``text`` or ``json``: ``auto`` is text when ``stream`` is a terminal, JSON lines otherwise."""
    if fmt != "auto":
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a stream without a file, or a closed one
        return "json"


def configure_logging(
    level: str = "INFO", *, fmt: str = "auto", access: AccessLog | None = None, stream: IO[str] | None = None
) -> None:
    """Send all logs to ``stream`` (stderr) as text or JSON lines (``fmt``, see ``resolve_format``), and
    set which requests the access log records."""
    global _access_policy
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    formatter: logging.Formatter = TextFormatter() if resolve_format(fmt, out) == "text" else JsonFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The logging HOWTO's "Optimization": no caller lookup and no thread or process names per record
    # (neither format prints them); a few microseconds of every access line (docs/operations-logging.md).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("uvicorn.access", "apscheduler.executors.default", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # "Adding job tentatively": once per job before the scheduler starts; "Added job <name>" follows.
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    scheduler_log.filters[:] = [lambda r: not str(r.msg).startswith("Adding job tentatively")]
    _access_policy = access or AccessLog()


def keep_access(policy: AccessLog, status: int, ms: float, draw: float) -> bool:
    """Whether the access log records a request: always when ``on``, never when ``off``; when sampling,
    every 4xx/5xx, every request of ``slow_ms`` or more, and the others when ``draw`` (0..1) < the rate."""
    if policy.mode == "on":
        return True
    if policy.mode == "off":
        return False
    return status >= 400 or ms >= policy.slow_ms or draw < policy.rate


def _fresh_prefix() -> None:
    global _id_prefix
    # Per process (re-drawn in a forked child): ids are the prefix plus a counter, so each one costs no
    # random-number syscall and no UUID object, yet stays unique across a fleet's processes.
    _id_prefix = uuid.uuid4().hex[:16]


_id_prefix = ""
_id_counter = itertools.count()
_fresh_prefix()
os.register_at_fork(after_in_child=_fresh_prefix)


def new_request_id() -> str:
    """A fresh 32-hex-digit request id: 64 random bits per process, then a 64-bit counter."""
    return f"{_id_prefix}{next(_id_counter):016x}"


# What the access log records for a request whose client disconnected before it was answered.
CLIENT_CLOSED_REQUEST = 499


class RequestIdMiddleware:
    """Assign each request an id (or keep a sane incoming ``X-Request-ID``), echo it, log the access.

    It runs on every request, so it does as little as it can: the access log's clock is read only when
    that log is enabled (servers and benchmarks often run at WARNING).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                if _VALID_ID.match(incoming):
                    rid = incoming
                break
        if not rid:
            rid = new_request_id()
        id_header = (b"x-request-id", rid.encode())
        token = request_id_var.set(rid)
        policy = _access_policy
        logging_on = policy.mode != "off" and _access.isEnabledFor(logging.INFO)
        started = time.perf_counter() if logging_on else 0.0
        status = 0
        client_gone = False

        async def receive_watching() -> ReceiveMessage:
            # A client that leaves mid-request makes Litestar raise a 500-class error, but nobody got a
            # 500: the access log says 499 ("client closed request", nginx's convention) instead.
            nonlocal client_gone
            message = await receive()
            if message["type"] == "http.disconnect":
                client_gone = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        try:
            await self.app(scope, receive_watching if logging_on else receive, send_with_id)
        finally:
            if logging_on:
                ms = (time.perf_counter() - started) * 1000
                status = CLIENT_CLOSED_REQUEST if client_gone else status
                if policy.mode == "on" or keep_access(policy, status, ms, random.random()):
                    _log_access(scope, status, ms)
            request_id_var.reset(token)


def _log_access(scope: Scope, status: int, ms: float) -> None:
    client = scope.get("client")
    _access.info(
        "request",
        extra={
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "ms": round(ms, 2),
            "client": client[0] if client else None,
        },
    )
