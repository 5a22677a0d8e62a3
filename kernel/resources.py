"""Pieces shared by the core API's resource packages (accounts, businesses, reports, notifications).

- Field types that mirror the schema's VARCHAR lengths and reject NUL characters, which PostgreSQL
  cannot store in text and would otherwise turn into a server error.
- Checks for free-form JSON objects (JSONB columns): bounded depth and size, no NUL anywhere.
- ``ResourceController``: a small request-body limit and a last line of defence that answers a value
  PostgreSQL refuses, a JSON document nested too deeply to decode, or invalid UTF-8, with a 4xx instead
  of a 500 (Litestar's JSON decoding lets the last two escape as non-validation errors).
- ``to_struct``: a database row as an output Struct, with timestamps marked as UTC.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import uuid
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import asyncpg
import msgspec
from litestar import Controller, Request
from litestar.params import QueryParameter
from msgspec import Meta

from kernel.auth import AuthUser, client_ip, forwarded_for
from kernel.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy import FromClause

__all__ = [
    "NON_BLANK",
    "NO_DEFAULT",
    "NO_NUL",
    "JsonObject",
    "Name",
    "Name50",
    "Name100",
    "QueryStr50",
    "ResourceController",
    "Str20",
    "Str50",
    "Str100",
    "Str255",
    "Text",
    "changes",
    "check_json_object",
    "check_language",
    "check_timezone",
    "check_url",
    "columns",
    "dress_handler",
    "fetch_all",
    "list_scope",
    "naive",
    "read_scope",
    "request_ip",
    "row_count",
    "set_clause",
    "to_struct",
    "to_utc_naive",
]

NO_NUL = r"^[^\x00]*$"

Str20 = Annotated[str, Meta(max_length=20, pattern=NO_NUL)]
Str50 = Annotated[str, Meta(max_length=50, pattern=NO_NUL)]
Str100 = Annotated[str, Meta(max_length=100, pattern=NO_NUL)]
Str255 = Annotated[str, Meta(max_length=255, pattern=NO_NUL)]
# Required, non-blank strings (NOT NULL VARCHAR(n)). The pattern is linear: no backtracking on long input.
NON_BLANK = r"^\s*[^\s\x00][^\x00]*$"
Name = Annotated[str, Meta(min_length=1, max_length=255, pattern=NON_BLANK)]
Name100 = Annotated[str, Meta(min_length=1, max_length=100, pattern=NON_BLANK)]
Name50 = Annotated[str, Meta(min_length=1, max_length=50, pattern=NON_BLANK)]
# TEXT columns are unbounded in PostgreSQL; the API bounds them so a request cannot exhaust memory.
Text = Annotated[str, Meta(max_length=20_000, pattern=NO_NUL)]
JsonObject = dict[str, Any]
# An optional query filter on a VARCHAR(50) column (a type, a category).
QueryStr50 = Annotated[str | None, QueryParameter(max_length=50, pattern=NO_NUL)]

MAX_JSON_DEPTH = 16
MAX_JSON_BYTES = 16 * 1024
T = TypeVar("T")


def check_json_object(value: JsonObject, field: str, max_bytes: int = MAX_JSON_BYTES) -> None:
    """Raise ``ValueError`` (a 400 naming ``field``) unless ``value`` is a small, storable JSON object."""

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"`{field}` is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, str):
            if "\x00" in node:
                raise ValueError(f"`{field}` contains a NUL character")
        elif isinstance(node, dict):
            for key, item in node.items():
                walk(key, depth)
                walk(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    walk(value, 1)
    if len(msgspec.json.encode(value)) > max_bytes:
        raise ValueError(f"`{field}` is larger than {max_bytes} bytes")


_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def check_language(value: str) -> str:
    """A BCP 47-style language tag (``en``, ``pt-BR``, ``zh-Hant``), at most 10 characters."""
    if len(value) > 10 or not _LANGUAGE.match(value):
        raise ValueError(f"`language` must be a BCP 47 language tag such as 'en' or 'pt-BR', not {value!r}")
    return value


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def check_timezone(value: str) -> str:
    """An IANA time zone name known to this system's tz database (``Europe/Paris``, ``UTC``)."""
    # Membership in the known set, rather than ZoneInfo(value), so no client string becomes a file path.
    if value not in _timezones():
        raise ValueError(f"`timezone` must be an IANA time zone such as 'Europe/Paris', not {value!r}")
    return value


def check_url(value: str | None, field: str) -> None:
    """An absolute http(s) URL with a host, or None."""
    if value is None:
        return
    scheme, sep, rest = value.partition("://")
    host = rest.split("/", 1)[0]
    if scheme.lower() not in ("http", "https") or not sep or not host or any(c.isspace() for c in value):
        raise ValueError(f"`{field}` must be an absolute http(s) URL")


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """A client datetime as naive UTC (the schema's convention); a naive input is taken as UTC."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        # 0001-01-01 with a positive offset or 9999-12-31 with a negative one: msgspec turns only
        # ValueError into a validation error (422); an OverflowError would be a 500.
        raise ValueError("the datetime is out of range once converted to UTC") from None


def naive(value: dt.datetime) -> dt.datetime:
    """A UTC datetime as the naive value the schema stores (cursors carry it that way)."""
    return value.replace(tzinfo=None)


def to_struct(struct: type[T], row: Any) -> T:
    """Build an output Struct from a row whose columns match its fields; timestamps are UTC."""
    values = {
        k: v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) and v.tzinfo is None else v
        for k, v in dict(row).items()
    }
    return struct(**values)


def changes(struct: msgspec.Struct, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields a PATCH-style Struct actually carries (UNSET ones left out)."""
    return {
        name: value
        for name, value in msgspec.structs.asdict(struct).items()
        if value is not msgspec.UNSET and name not in exclude
    }


def set_clause(fields: dict[str, Any], first_param: int = 1) -> tuple[str, list[Any]]:
    """``"col" = $n, ...`` for an UPDATE, and its arguments; also bumps ``updated_at``.

    Column names come from Struct field names (never from client keys), and are quoted because the
    seed uses reserved words such as ``order``.
    """
    parts = [f'"{name}" = ${i}' for i, name in enumerate(fields, start=first_param)]
    parts.append("updated_at = (now() AT TIME ZONE 'UTC')")
    return ", ".join(parts), list(fields.values())


def request_ip(request: Request[Any, Any, Any]) -> str | None:
    """The client's address, believing ``X-Forwarded-For`` only from the configured trusted proxies."""
    peer = request.client.host if request.client else None
    trusted = request.app.state.settings.trusted_proxies
    return client_ip(peer, forwarded_for(request.headers), trusted)


async def fetch_all(conn: asyncpg.Connection, query: str, *args: Any) -> list[Any]:
    """``conn.fetch`` with a typed result (asyncpg ships no type hints)."""
    rows: list[Any] = await conn.fetch(query, *args)
    return rows


def read_scope(user: AuthUser) -> uuid.UUID | None:
    """The owner filter for reads: admins may read everything (None), anyone else only their own."""
    return None if user.has_role("admin") else user.user_id


def list_scope(user: AuthUser, requested: uuid.UUID | None) -> uuid.UUID | None:
    """The owner filter of a list with an optional ``?user_id=``.

    Admins get ``requested`` (None: everyone's rows); anyone else gets their own id, and asking for another
    user's rows answers 404 as if that user did not exist.
    """
    scope = read_scope(user)
    if scope is None:
        return requested
    if requested is not None and requested != scope:
        raise NotFoundError("No such user.", code="user_not_found")
    return scope


class ResourceController(Controller):
    """Base of the core API's controllers: bounded bodies, and no 500 for any value a client sends."""

    # Values the database refuses, races and undecodable bodies are mapped app-wide in
    # kernel.http_errors; this bounds the body every core route reads.
    request_max_body_size = 64 * 1024


NO_DEFAULT = inspect.Parameter.empty


def dress_handler(
    fn: Any, module: str, name: str, doc: str, params: list[tuple[str, Any, Any]], returns: Any
) -> Any:
    """``fn`` dressed as a controller method ``name`` of ``module`` taking ``params`` (name, type, default)."""
    fn.__module__, fn.__name__, fn.__qualname__, fn.__doc__ = module, name, name, doc
    fn.__annotations__ = {**{p: t for p, t, _ in params}, "return": returns}
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=t, default=d)
            for p, t, d in params
        ],
        return_annotation=returns,
    )
    return fn


def columns(table: FromClause, *, exclude: Iterable[str] = ()) -> str:
    """``"a", "b", "c"``: the columns of ``table`` in declaration order, without ``exclude``.

    Names are quoted because the seed uses reserved words as column names (``order``).
    """
    skip = set(exclude)
    return ", ".join(f'"{c.name}"' for c in table.columns if c.name not in skip)


def row_count(status: str) -> int:
    """Rows affected, from a command tag such as ``DELETE 3`` or ``UPDATE 0``."""
    return int(status.rsplit(" ", 1)[-1])
