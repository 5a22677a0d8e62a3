"""Segment messages to COPY-ready rows: the mapping of the ingest hot path, validated event by event.

- ``columns``: the COPY column order, read from ``ingest.models`` at import;
- ``values``: field-level pieces (identities, timestamps, property text, generated ids);
- ``batch``: what a request contributes (``RequestInfo``) and what mapping it gives (``Batch``);
- ``events``: one message to its rows, and a request's messages to a ``Batch``;
- ``encoding``: a flush's rows as Arrow columns, encoded to binary COPY in compiled code (pgpq).
"""

from __future__ import annotations

from ingest.mapping.batch import ROW_USER_ID, Batch, Rejection, RequestInfo
from ingest.mapping.columns import EVENT_COLUMNS, PROPERTY_COLUMNS, USER_ID_SLOT
from ingest.mapping.encoding import CopyStream, Run, encode_rows
from ingest.mapping.events import VALID_TYPES, map_events
from ingest.mapping.values import message_key, parse_timestamp

__all__ = [
    "EVENT_COLUMNS",
    "PROPERTY_COLUMNS",
    "ROW_USER_ID",
    "USER_ID_SLOT",
    "VALID_TYPES",
    "Batch",
    "CopyStream",
    "Rejection",
    "RequestInfo",
    "Run",
    "encode_rows",
    "map_events",
    "message_key",
    "parse_timestamp",
]
