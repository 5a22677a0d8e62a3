"""What the flush makes of an exception from the database: the rows' fault, or the connection's.

- ``poison``: the database (or asyncpg encoding a value) refused the data; the flush is bisected until the
  refused events are isolated, and they are reported as ``storage_error``;
- ``unavailable``: nothing was committed because the database could not be reached or the connection
  broke; the flush is retried once on a fresh connection, then its requests get 503;
- ``transient``: worth an immediate retry of the same transaction (a serialization failure, a deadlock).

Anything unknown is ``poison``: bisection then isolates it rather than refusing every request of the flush.
"""

from __future__ import annotations

from typing import Literal

import asyncpg
import asyncpg.exceptions._base as asyncpg_base

from kernel.db import DB_UNAVAILABLE

__all__ = ["Fault", "classify"]

Fault = Literal["poison", "unavailable", "transient"]

# The kernel's (the HTTP layer answers them 503), and for a flush every error of the connection
# (08), operator intervention (57) and insufficient-resources (53) classes.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *DB_UNAVAILABLE,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)
_TRANSIENT: tuple[type[BaseException], ...] = (asyncpg.exceptions.TransactionRollbackError,)


def classify(exc: BaseException) -> Fault:
    """The kind of failure ``exc`` is for a flush (the module's docstring)."""
    if isinstance(exc, asyncpg_base.DataError):  # client-side encoding of a bad value
        return "poison"
    if isinstance(exc, _UNAVAILABLE):
        return "unavailable"
    if isinstance(exc, _TRANSIENT):
        return "transient"
    return "poison"
