"""Rows a user owns: one repository (``OwnedTable``) and one service (``OwnedResource``) for all of them.

Every core resource (a device, a subscription, a business, a report, a scheduled notification, ...) is
a row with a UUID primary key and an owner column. Reads and writes follow the same rules everywhere:

- a row is always looked up *scoped to its owner*, so another user's id answers 404, exactly as an id
  that does not exist (the authorization matrix relies on it);
- lists are keyset-paginated (``kernel.pagination``) on ``(sort column, primary key)``, newest first
  unless the resource says otherwise, and scoped to the owner; admins may read everyone's rows where the
  resource allows it (``admin_reads``), optionally one user's (``?user_id=``);
- writes (patch, delete) are the owner's alone.

Column lists come from the ``Table`` (``columns``): the schema is described in the domain's ``models.py``
only. A domain keeps its special cases (an upsert, child rows, a state change) as functions on top.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from litestar import get
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.dialects import postgresql

from kernel import resources
from kernel.auth import require_role
from kernel.db import uuid7
from kernel.deps import CurrentUser, DbConn
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page, decode_cursor, make_page
from kernel.resources import changes, fetch_all, list_scope, naive, read_scope, set_clause, to_struct

if TYPE_CHECKING:
    import asyncpg
    import msgspec
    from sqlalchemy import FromClause

    from kernel.auth import AuthUser
    from kernel.errors import NotFoundError

__all__ = [
    "Filter",
    "OwnedResource",
    "OwnedTable",
    "get_route",
    "list_route",
    "route",
]

OutT = TypeVar("OutT")
Row = Any  # asyncpg.Record
# A list filter: an SQL condition with ``{}`` where its argument goes, and the argument (None: no filter).
# The condition is always the code's own text; only the argument comes from the client.
Filter = tuple[str, Any]
Filters = Sequence[Filter]
Owner = uuid.UUID | None  # None: every owner
Key = Sequence[Any] | None  # a list's sort key, after which a page starts (None: the first page)
_NOW = "(now() AT TIME ZONE 'UTC')"
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _cursor_value(value: Any) -> Any:
    # Cursors carry the naive UTC timestamps the schema stores (Out structs mark them UTC).
    return naive(value) if isinstance(value, dt.datetime) else value


class OwnedTable:
    """The SQL of a table whose rows have one owner (by default ``user_id``).

    ``owner`` None in a method means "any owner" (an admin's read, or a row already checked).
    """

    def __init__(
        self,
        table: FromClause,
        *,
        owner: str = "user_id",
        order: str = "created_at",
        descending: bool = True,
        exclude: Iterable[str] = (),
    ) -> None:
        primary = [c for c in table.columns if c.primary_key]
        if len(primary) != 1:
            raise ValueError("an owned table has a single-column primary key")
        self.name: str = table.name  # type: ignore[attr-defined]
        self.id: str = primary[0].name
        self.owner = owner
        self.order = order
        self.descending = descending
        self.columns = resources.columns(table, exclude=exclude)
        sort = table.columns[order]
        # The cursor's shape follows the sort column: (timestamp, uuid) or (date, uuid).
        generic_tuple: Any = tuple
        self.key_type: Any = generic_tuple[sort.type.python_type, primary[0].type.python_type]
        self._sort_cast = sort.type.compile(dialect=_DIALECT)

    def _scoped(self, first: int = 1) -> str:
        return f"{self.id} = ${first} AND (${first + 1}::uuid IS NULL OR {self.owner} = ${first + 1})"

    async def get(
        self, conn: asyncpg.Connection, row_id: uuid.UUID, owner: uuid.UUID | None, *, lock: str = ""
    ) -> Row | None:
        """The row ``row_id`` if ``owner`` owns it; ``lock`` is a locking clause such as ``FOR UPDATE``."""
        return await conn.fetchrow(
            f"SELECT {self.columns} FROM {self.name} WHERE {self._scoped()} {lock}", row_id, owner
        )

    async def rows(
        self, conn: asyncpg.Connection, owner: Owner, *, after: Key, limit: int, filters: Filters = ()
    ) -> list[Row]:
        """Up to ``limit + 1`` rows of ``owner`` (everyone's when None) after the key ``after``."""
        args: list[Any] = []

        def arg(value: Any, cast: str = "") -> str:
            args.append(value)
            return f"${len(args)}{cast}"

        where = ["TRUE"]
        if owner is not None:
            where.append(f"{self.owner} = {arg(owner)}")
        where.extend(sql.format(arg(value)) for sql, value in filters if value is not None)
        if after is not None:
            op = "<" if self.descending else ">"
            where.append(
                f"({self.order}, {self.id}) {op} ({arg(after[0], '::' + self._sort_cast)}, {arg(after[1])})"
            )
        direction = "DESC" if self.descending else "ASC"
        return await fetch_all(
            conn,
            f"""SELECT {self.columns} FROM {self.name} WHERE {" AND ".join(where)}
                ORDER BY {self.order} {direction}, {self.id} {direction} LIMIT {arg(limit + 1)}""",
            *args,
        )

    async def insert(self, conn: asyncpg.Connection, values: dict[str, Any]) -> Row:
        """Insert a row (``values`` names its id and owner too) and return it."""
        names = ", ".join(f'"{name}"' for name in values)
        params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        return await conn.fetchrow(
            f"INSERT INTO {self.name} ({names}) VALUES ({params}) RETURNING {self.columns}", *values.values()
        )

    async def update(
        self,
        conn: asyncpg.Connection,
        row_id: uuid.UUID,
        owner: uuid.UUID | None,
        values: dict[str, Any],
        *,
        touch: bool = False,
    ) -> Row | None:
        """Apply ``values`` to the row if ``owner`` owns it; nothing to apply reads it unchanged, unless
        ``touch`` (then only ``updated_at`` moves)."""
        if not values and not touch:
            return await self.get(conn, row_id, owner)
        sets, args = set_clause(values, 3)
        return await conn.fetchrow(
            f"UPDATE {self.name} SET {sets} WHERE {self._scoped()} RETURNING {self.columns}",
            row_id,
            owner,
            *args,
        )

    async def delete(self, conn: asyncpg.Connection, row_id: uuid.UUID, owner: uuid.UUID | None) -> bool:
        """Delete the row if ``owner`` owns it; whether it did."""
        status = await conn.execute(f"DELETE FROM {self.name} WHERE {self._scoped()}", row_id, owner)
        return resources.row_count(status) == 1


class OwnedResource(Generic[OutT]):
    """The service of an ``OwnedTable``: rows as ``out`` Structs, the caller's scope, 404 for the rest.

    ``admin_reads``: admins may read every owner's rows (get and list); otherwise everyone, admins
    included, sees only their own. Writes are always the owner's alone.
    """

    def __init__(
        self,
        table: OwnedTable,
        out: type[OutT],
        missing: type[NotFoundError],
        message: str,
        *,
        admin_reads: bool = True,
    ) -> None:
        self.table = table
        self.out = out
        self.missing = missing
        self.message = message
        self.admin_reads = admin_reads

    def not_found(self) -> NotFoundError:
        """The error for a row that does not exist or is someone else's (the same answer for both)."""
        return self.missing(self.message)

    def scope(self, user: AuthUser) -> uuid.UUID | None:
        """The owner filter of ``user``'s reads (None: every owner)."""
        return read_scope(user) if self.admin_reads else user.user_id

    def to_out(self, row: Row) -> OutT:
        """A row as the output Struct."""
        return to_struct(self.out, row)

    def found(self, row: Row | None) -> OutT:
        """``row`` as the output Struct, or the resource's 404 when there is none."""
        if row is None:
            raise self.not_found()
        return self.to_out(row)

    async def get(self, conn: asyncpg.Connection, user: AuthUser, row_id: uuid.UUID) -> OutT:
        """A row ``user`` may read."""
        return self.found(await self.table.get(conn, row_id, self.scope(user)))

    async def list(
        self,
        conn: asyncpg.Connection,
        user: AuthUser,
        *,
        cursor: str | None,
        limit: int,
        user_id: uuid.UUID | None = None,
        filters: Sequence[Filter] = (),
    ) -> Page[OutT]:
        """A page of the rows ``user`` may read, in the table's order; ``user_id`` narrows an admin's list
        to one owner (anyone else asking for another owner's rows gets a 404, as for an unknown user)."""
        scope = list_scope(user, user_id) if self.admin_reads else user.user_id
        return await self.page(conn, scope, after=self.decode(cursor), limit=limit, filters=filters)

    def decode(self, cursor: str | None) -> Sequence[Any] | None:
        """The sort key a list's cursor carries (None: the first page); 400 for a foreign cursor."""
        key: Sequence[Any] | None = decode_cursor(cursor, self.table.key_type)
        return key

    async def page(
        self, conn: asyncpg.Connection, owner: Owner, *, after: Key, limit: int, filters: Filters = ()
    ) -> Page[OutT]:
        """A page of ``owner``'s rows (everyone's when None) after the key ``after``; no access check:
        for rows whose owner was already checked (the analyses of a business the caller may read)."""
        rows = await self.table.rows(conn, owner, after=after, limit=limit, filters=filters)
        order, id_ = self.table.order, self.table.id
        return make_page(
            [self.to_out(r) for r in rows],
            limit,
            lambda item: (_cursor_value(getattr(item, order)), getattr(item, id_)),
        )

    async def create(self, conn: asyncpg.Connection, owner: uuid.UUID, values: dict[str, Any]) -> OutT:
        """Insert a row of ``owner`` under a new id and return it."""
        return self.to_out(
            await self.table.insert(conn, {self.table.id: uuid7(), self.table.owner: owner, **values})
        )

    async def update(
        self, conn: asyncpg.Connection, user: AuthUser, row_id: uuid.UUID, values: dict[str, Any]
    ) -> OutT:
        """Change one of ``user``'s rows."""
        return self.found(await self.table.update(conn, row_id, user.user_id, values))

    async def add(self, conn: asyncpg.Connection, user: AuthUser, data: msgspec.Struct) -> OutT:
        """A new row of ``user`` with the fields of a create body."""
        return await self.create(conn, user.user_id, changes(data))

    async def patch(
        self, conn: asyncpg.Connection, user: AuthUser, row_id: uuid.UUID, data: msgspec.Struct
    ) -> OutT:
        """Change one of ``user``'s rows by the fields a PATCH body carries."""
        return await self.update(conn, user, row_id, changes(data))

    async def delete(self, conn: asyncpg.Connection, user: AuthUser, row_id: uuid.UUID) -> None:
        """Delete one of ``user``'s rows."""
        if not await self.table.delete(conn, row_id, user.user_id):
            raise self.not_found()


# --- Route handlers: a domain controller's routes (class attributes) with its own path, summary and
# docstring and module, so the documentation and the authorization matrix (routes by module) stay the same.


_CALLER: list[tuple[str, Any, Any]] = [
    ("conn", DbConn, resources.NO_DEFAULT),
    ("current_user", CurrentUser, resources.NO_DEFAULT),
]


def _route(
    method: Any,
    path: str,
    call: Callable[..., Awaitable[Any]],
    *,
    summary: str,
    doc: str,
    module: str,
    name: str,
    body: Any = None,
    returns: Any = None,
    status_code: int | None = None,
) -> Any:
    """``method`` (Litestar's ``post``, ``patch``, ...) at ``path``: ``call(conn, current_user[, <the path's
    {id:uuid}>][, data])``, ``body`` the JSON body's type, ``returns`` the answer's (None: no body)."""
    path_id = next(iter(re.findall(r"{(\w+):uuid}", path)), None)

    async def handler(self: Any, conn: asyncpg.Connection, current_user: AuthUser, **kwargs: Any) -> Any:
        args = [kwargs[p] for p in (path_id, "data" if body is not None else None) if p is not None]
        result = await call(conn, current_user, *args)
        return None if returns is None else result

    params = [] if path_id is None else [(path_id, FromPath[uuid.UUID], resources.NO_DEFAULT)]
    if body is not None:
        json_body: Any = JSONBody  # mypy: a runtime alias
        params.append(("data", json_body[body], resources.NO_DEFAULT))
    fn = resources.dress_handler(handler, module, name, doc, params + _CALLER, returns)
    options = {} if status_code is None else {"status_code": status_code}
    return method(path, summary=summary, **options)(fn)


Stub = Callable[..., None]


def _from_stub(stub: Stub) -> dict[str, str]:
    # The stub method gives the handler's name and module; its docstring the OpenAPI summary (the first
    # paragraph) and description (the rest).
    summary, _, doc = inspect.cleandoc(stub.__doc__ or "").partition("\n\n")
    return {"summary": summary, "doc": doc, "module": stub.__module__, "name": stub.__name__}


def route(
    method: Any,
    path: str,
    call: Callable[..., Awaitable[Any]],
    body: Any = None,
    returns: Any = None,
    *,
    status_code: int | None = None,
) -> Callable[[Stub], Any]:
    """Decorate a stub method (see ``_from_stub``) into ``_route``'s handler of ``call``."""
    return lambda stub: _route(
        method, path, call, body=body, returns=returns, status_code=status_code, **_from_stub(stub)
    )


def get_route(resource: OwnedResource[Any], path: str) -> Callable[[Stub], Any]:
    """``GET <path>`` (with one ``{<id>:uuid}``): one row the caller may read (404 otherwise)."""
    return route(get, path, resource.get, None, resource.out)


def list_route(
    resource: OwnedResource[Any], path: str = "/", *, by_user: bool = True, role: str | None = None
) -> Callable[[Stub], Any]:
    """``GET <path>``: a page of the rows the caller may read, newest first; ``by_user`` adds the admin's
    ``?user_id=`` filter; ``role``, when given, is required of the caller (403 otherwise)."""

    async def handler(
        self: Any,
        conn: asyncpg.Connection,
        current_user: AuthUser,
        cursor: str | None,
        limit: int,
        user_id: uuid.UUID | None = None,
    ) -> Any:
        if role is not None:
            require_role(current_user, role)
        return await resource.list(conn, current_user, cursor=cursor, limit=limit, user_id=user_id)

    params = list(_CALLER)
    if by_user:
        user_param: Any = FromQuery[uuid.UUID | None]  # type: ignore[misc]  # mypy: a runtime alias
        params.append(("user_id", user_param, None))
    params += [("cursor", CursorParam, None), ("limit", LimitParam, DEFAULT_PAGE_SIZE)]
    page: Any = Page

    def build(stub: Stub) -> Any:
        names = _from_stub(stub)
        fn = resources.dress_handler(
            handler, names["module"], names["name"], names["doc"], params, page[resource.out]
        )
        return get(path, summary=names["summary"])(fn)

    return build
