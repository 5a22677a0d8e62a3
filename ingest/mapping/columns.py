"""The COPY column order of the two event tables, read once at import from their SQLAlchemy ``Table``s.

``ingest.models`` is the one description of the schema; nothing else keeps a list of its columns. The
mapping builds rows as plain positional tuples (the hot path has no ORM and no per-row dicts), so the
order it writes is checked here against the tables' once, when the module is imported.
"""

from __future__ import annotations

from ingest.models import AnalyticsEvent, EventProperty

__all__ = ["EVENT_COLUMNS", "PROPERTY_COLUMNS", "USER_ID_SLOT"]

# created_at is left to its column default (the flush transaction's time), so it is not copied.
_DEFAULTED = "created_at"

EVENT_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in AnalyticsEvent.__table__.columns if c.name != _DEFAULTED
)
PROPERTY_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in EventProperty.__table__.columns if c.name != _DEFAULTED
)
# The flush clears this slot when the candidate user does not exist.
USER_ID_SLOT = EVENT_COLUMNS.index("user_id")

# The order in which ``ingest.mapping.events`` fills its row tuples and ``ingest.mapping.encoding``
# writes the COPY columns (not a second schema: a guard that fails the import, rather than writing
# values into the wrong columns, if a model's columns move).
_EVENT_ROW_ORDER = (
    "event_id",
    "user_id",
    "event_name",
    "event_category",
    "device_id",
    "session_id",
    "ip_address",
    "user_agent",
    "timestamp",
    "source_id",
    "message_id",
    "external_user_id",
    "anonymous_id",
    "received_at",
)
_PROPERTY_ROW_ORDER = ("property_id", "event_id", "property_name", "property_value", "timestamp")
if EVENT_COLUMNS != _EVENT_ROW_ORDER or PROPERTY_COLUMNS != _PROPERTY_ROW_ORDER:
    raise RuntimeError(
        "ingest.models changed the column order of analytics_events or event_properties: update the "
        f"row tuples of ingest.mapping.events to {EVENT_COLUMNS} and {PROPERTY_COLUMNS}"
    )
