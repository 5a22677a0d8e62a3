"""The rows of an export: events with their properties as one JSON object, in ``EXPORT_SCHEMA``.

Read a quarter of a UTC day at a time (events and their properties through ADBC as Arrow, shaped with Arrow
and NumPy), so memory holds one slice whatever the range. Ids (``event_id``, ``user_id``, ``source_id``)
stay 16-byte ``arrow.uuid`` values as the driver returns them; timestamps microseconds UTC; ``properties``
one JSON object string of every property of the event (PostHog's convention; ``{}`` when it has none; values
stay strings, as stored). Nothing is converted per event in Python: the JSON is built from the property rows
with Arrow compute.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aggregation import source
from aggregation.memory import release_memory
from aggregation.repository import DAY, day_start

__all__ = ["EXPORT_SCHEMA", "export_table", "properties_json", "slice_tables"]

_UTC_US = pa.timestamp("us", tz="UTC")
# Column order of the export (the API's single file appends ``event_date``).
EXPORT_SCHEMA = pa.schema(
    [
        ("event_id", pa.uuid()),
        ("user_id", pa.uuid()),
        ("event_name", pa.string()),
        ("event_category", pa.string()),
        ("device_id", pa.string()),
        ("session_id", pa.string()),
        ("ip_address", pa.string()),
        ("user_agent", pa.string()),
        ("timestamp", _UTC_US),
        ("created_at", _UTC_US),
        ("received_at", _UTC_US),
        ("source_id", pa.uuid()),
        ("message_id", pa.string()),
        ("external_user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("properties", pa.string()),
    ]
)


def _storage(column: pa.ChunkedArray) -> pa.Array:
    """The 16-byte ``fixed_size_binary`` storage of an ``arrow.uuid`` column, as one array."""
    chunks = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in column.chunks]
    if not chunks:
        return pa.array([], pa.binary(16))
    return pa.concat_arrays(chunks)


def _grouped(event_ids: pa.ChunkedArray, properties: pa.Table) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Map offsets per event of ``event_ids`` and the property names and values in that order.

    Each property row finds its event's position by a hash lookup, a stable sort groups the rows by that
    position (keeping each event's own order) and the per-event counts become the offsets. Rows of events
    not in ``event_ids`` are ignored.
    """
    n = len(event_ids)
    position = pc.index_in(_storage(properties["event_id"]), value_set=_storage(event_ids))
    names, values = properties["property_name"], properties["property_value"]
    if position.null_count:
        known = position.is_valid()
        position, names, values = position.filter(known), names.filter(known), values.filter(known)
    at = position.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    order = pa.array(np.argsort(at, kind="stable"))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(at, minlength=n), out=offsets[1:])
    return offsets, names.take(order).combine_chunks(), values.take(order).combine_chunks()


# JSON string escapes: backslash and quote by substring replacement (vectorised); the other control
# characters, rare in property text, per value in Python.
_CONTROL = re.compile(r"[\x00-\x1f]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _json_strings(values: pa.Array) -> pa.Array:
    """Each string as a JSON string literal (quoted and escaped)."""
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    has_control = pc.match_substring_regex(escaped, "[\\x00-\\x1f]")
    if pc.any(has_control).as_py():
        texts = escaped.to_pylist()
        for i in np.flatnonzero(has_control.to_numpy(zero_copy_only=False)):
            texts[i] = _CONTROL.sub(_escape_control, texts[i])
        escaped = pa.array(texts, pa.string())
    return pc.binary_join_element_wise('"', escaped, '"', "")


def properties_json(event_ids: pa.ChunkedArray, properties: pa.Table) -> pa.Array:
    """One JSON object string per event of ``event_ids`` with its rows of ``properties``, in their order.

    PostHog's convention: ``{"name": "value", ...}``, values strings as stored, ``{}`` for an event without
    properties. ``properties`` has columns ``event_id, property_name, property_value``. Built with Arrow
    compute over all the slice's properties at once (escape, pair, join per event), never per event.
    """
    offsets, names, values = _grouped(event_ids, properties)
    pairs = pc.binary_join_element_wise(_json_strings(names), _json_strings(values), ":")
    per_event = pa.ListArray.from_arrays(pa.array(offsets), pairs)
    return pc.binary_join_element_wise("{", pc.binary_join(per_event, ","), "}", "")


def export_table(events: pa.Table, properties: pa.Table) -> pa.Table:
    """Events as read by ``source.read_export_events`` plus their properties, in ``EXPORT_SCHEMA``.

    Timestamps are labelled UTC (the stored values are UTC) and the driver's field metadata is dropped;
    no column is copied but the properties.
    """
    columns: list[pa.ChunkedArray | pa.Array] = []
    for field in EXPORT_SCHEMA:
        if field.name == "properties":
            columns.append(properties_json(events["event_id"], properties))
        else:
            columns.append(events[field.name].cast(field.type))
    return pa.Table.from_arrays(columns, schema=EXPORT_SCHEMA)


def _slices(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    bounds = []
    for i in range((end - start).days + 1):
        day = start + dt.timedelta(days=i)
        lo = day_start(day)
        while lo < day_start(day) + DAY:
            bounds.append((day, lo, lo + source.SLICE))
            lo += source.SLICE
    return bounds


def slice_tables(url: str, start: dt.date, end: dt.date) -> Generator[tuple[dt.date, pa.Table], None, None]:
    """Export rows of the days ``start ..= end``, in time order, one slice (a quarter day) at a time.

    Every day yields at least one (possibly empty) table. While the caller writes one slice, the next one
    is read: its events and its properties at the same time, each on its own connection and worker thread
    (the driver, Arrow and NumPy release the GIL), so PostgreSQL's two backends, the driver's decoding and
    the Parquet encoding use both cores. Memory holds about two slices whatever the range or the size of a
    day. Properties carry their event's timestamp, so one time slice holds whole events with all their
    properties.
    """
    bounds = _slices(start, end)
    # Exiting the pool waits for the reads in flight (at most one slice) before the connections close.
    with (
        source.connect(url) as events_conn,
        source.connect(url) as props_conn,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="export-read") as pool,
    ):

        def read(lo: dt.datetime, hi: dt.datetime) -> tuple[Future[pa.Table], Future[pa.Table]]:
            return (
                pool.submit(source.read_export_events, events_conn, lo, hi),
                pool.submit(source.read_export_properties, props_conn, lo, hi),
            )

        ahead = read(*bounds[0][1:])
        for i, (day, _, _) in enumerate(bounds):
            events, props = ahead[0].result(), ahead[1].result()
            if i + 1 < len(bounds):
                ahead = read(*bounds[i + 1][1:])
            yield day, export_table(events, props)
            del events, props
            release_memory()
