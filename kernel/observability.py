"""Structured JSON logs carrying the request id, and the ASGI middleware that assigns it.

Headers and bodies are never logged: they hold passwords, tokens and write keys.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import sys
import time
import uuid
from typing import Any

import orjson
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

__all__ = ["RequestIdMiddleware", "configure_logging", "new_request_id", "request_id_var"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_access = logging.getLogger("corp_astro.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Send all logs to stderr, as JSON lines by default."""
    handler = logging.StreamHandler(sys.stderr)
    if json:
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "apscheduler.executors.default", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
        logging_on = _access.isEnabledFor(logging.INFO)
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
                _access.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": CLIENT_CLOSED_REQUEST if client_gone else status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)
