"""Column helpers every domain's tables share (the seed's conventions), so no domain restates them."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, func, text
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["EMPTY_JSON", "NOW", "created_column", "pk_column", "user_fk"]

NOW = func.current_timestamp()
EMPTY_JSON = text("'{}'::jsonb")


def pk_column() -> Mapped[uuid.UUID]:
    """A UUID primary key defaulting to ``gen_random_uuid()``."""
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())


def created_column() -> Mapped[dt.datetime]:
    """``TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP``."""
    return mapped_column(TIMESTAMP(), nullable=False, server_default=NOW)


def user_fk(ondelete: str = "CASCADE") -> Mapped[uuid.UUID]:
    """An indexed, non-null reference to ``users.user_id``."""
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete=ondelete), nullable=False, index=True
    )
