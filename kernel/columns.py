"""Column helpers every domain's tables share (the seed's conventions), so no domain restates them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

__all__ = [
    "EMPTY_JSON",
    "NOW",
    "Timestamps",
    "count_column",
    "created_column",
    "indexes",
    "json_column",
    "pk_column",
    "ref_column",
    "status_column",
    "time_column",
    "user_fk",
]

NOW = func.current_timestamp()
EMPTY_JSON = text("'{}'::jsonb")


class Timestamps:
    """Mixin: ``created_at`` and ``updated_at``, both ``TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP``."""

    created_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False, server_default=NOW)
    updated_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False, server_default=NOW)


def indexes(table: str, *names: str) -> tuple[Index, ...]:
    """One index ``ix_<table>_<column>`` on each named column (the seed's single-column indexes)."""
    return tuple(Index(f"ix_{table}_{name}", name) for name in names)


def pk_column() -> Mapped[uuid.UUID]:
    """A UUID primary key defaulting to ``gen_random_uuid()``."""
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())


def created_column() -> Mapped[dt.datetime]:
    """``TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP``."""
    return mapped_column(TIMESTAMP(), nullable=False, server_default=NOW)


def time_column() -> Mapped[dt.datetime | None]:
    """A nullable ``TIMESTAMP`` (when something happened, if it has)."""
    return mapped_column(TIMESTAMP())


def status_column(default: str | None = None) -> Mapped[str]:
    """``VARCHAR(20) NOT NULL``, with ``default`` as its server default when given."""
    return mapped_column(String(20), nullable=False, server_default=default)


def count_column() -> Mapped[int]:
    """``BIGINT NOT NULL``."""
    return mapped_column(BigInteger, nullable=False)


def json_column() -> Mapped[dict[str, Any]]:
    """``JSONB NOT NULL DEFAULT '{}'``."""
    return mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)


def ref_column(target: str, ondelete: str = "CASCADE") -> Mapped[uuid.UUID]:
    """An indexed, non-null UUID reference to ``target`` (``table.column``)."""
    return mapped_column(
        UUID(as_uuid=True), ForeignKey(target, ondelete=ondelete), nullable=False, index=True
    )


def user_fk(ondelete: str = "CASCADE") -> Mapped[uuid.UUID]:
    """An indexed, non-null reference to ``users.user_id``."""
    return ref_column("users.user_id", ondelete)
