"""Which database failures a flush blames on its rows (bisect) and which on the connection (retry, 503)."""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions._base as asyncpg_base
import pytest

from ingest.faults import classify


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        # Seen after a PostgreSQL restart on a pooled connection: it was bisected as if a row were bad.
        (
            asyncpg_base.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            ),
            "unavailable",
        ),
        (asyncpg.InterfaceError("connection is closed"), "unavailable"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation"), "unavailable"),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), "unavailable"),
        (ConnectionResetError(), "unavailable"),
        (TimeoutError(), "unavailable"),
        (asyncpg.exceptions.SerializationError("could not serialize access"), "transient"),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), "transient"),
        (asyncpg_base.DataError("invalid input for query argument"), "poison"),
        (asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"), "poison"),
        (asyncpg.exceptions.CheckViolationError("violates check constraint"), "poison"),
        (ValueError("unknown"), "poison"),
    ],
)
def test_classify(exc: BaseException, fault: str) -> None:
    assert classify(exc) == fault
