"""A flush's rows as Arrow columns, encoded to PostgreSQL's binary COPY format in compiled code.

The flush joins runs of events of many requests (``Run``: a ``Batch`` and a range of its events). Their
columns are built with one C-level conversion per column (``pyarrow.array``) and vectorised steps for
what repeats (a request's source and receive time, an event's id and time on each of its property rows),
then ``pgpq`` writes the COPY stream. Nothing here makes a Python object per property row, and no
value is encoded by asyncpg one by one.

The stream's bytes are what PostgreSQL's binary input functions read for the columns' own types: a
uuid is its 16 bytes (Arrow ``binary(16)``), ``varchar``/``text`` are UTF-8 (Arrow ``string``), and
``timestamp`` is microseconds since 2000-01-01 (Arrow ``timestamp[us]``, which pgpq rebases).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pgpq
import pyarrow as pa

from ingest.mapping.batch import ROW_TIME, ROW_USER_ID, Batch
from ingest.mapping.columns import EVENT_COLUMNS, PROPERTY_COLUMNS

__all__ = ["CopyStream", "Run", "encode_rows"]

# A run of one request's events: batch.rows[start:end].
Run = tuple[Batch, int, int]
# A binary COPY stream in parts, to be sent in order.
CopyStream = tuple[bytes, ...]

_UUID = pa.binary(16)
_TIME = pa.timestamp("us")
_TYPES = {
    "event_id": _UUID,
    "user_id": _UUID,
    "source_id": _UUID,
    "property_id": _UUID,
    "timestamp": _TIME,
    "received_at": _TIME,
}
_EVENT_SCHEMA = pa.schema([pa.field(c, _TYPES.get(c, pa.string())) for c in EVENT_COLUMNS])
_PROPERTY_SCHEMA = pa.schema([pa.field(c, _TYPES.get(c, pa.string())) for c in PROPERTY_COLUMNS])


def _stream(schema: pa.Schema, arrays: list[pa.Array]) -> CopyStream:
    """One complete binary COPY stream of ``arrays``: its header, then its rows and trailer (pgpq buffers
    the rows until ``finish``; the parts are sent as they are rather than joined into a third copy)."""
    encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
    header = encoder.write_header()
    rows = encoder.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return (header, rows, encoder.finish()) if rows else (header, encoder.finish())


def _fixed16(data: bytes, count: int) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(_UUID, count, [None, pa.py_buffer(data)])


@dataclass(slots=True)
class _Gathered:
    """The runs' event rows and property columns, joined in run order."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    event_ids: list[bytes] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    sources: list[bytes] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    property_ids: list[bytes] = field(default_factory=list)


def _gather(runs: Sequence[Run]) -> _Gathered:
    g = _Gathered()
    for batch, start, end in runs:
        if start == 0 and end == len(batch.rows):
            first, last = 0, len(batch.names)
            g.rows += batch.rows
            g.counts += batch.counts
            g.event_ids.append(batch.event_ids)
        else:
            first = sum(batch.counts[:start])
            last = first + sum(batch.counts[start:end])
            g.rows += batch.rows[start:end]
            g.counts += batch.counts[start:end]
            g.event_ids.append(batch.event_ids[16 * start : 16 * end])
        g.names += batch.names[first:last]
        g.values += batch.values[first:last]
        g.property_ids.append(batch.property_ids[16 * first : 16 * last])
        g.lengths.append(end - start)
        g.sources.append(batch.source_id.bytes)
        g.received.append(batch.received_at)
    return g


def encode_rows(runs: Sequence[Run], known_users: Collection[Any]) -> tuple[CopyStream, CopyStream | None]:
    """Binary COPY streams of the runs' ``analytics_events`` rows and ``event_properties`` rows (None
    when no event has a property). A user_id candidate not in ``known_users`` is written as NULL."""
    g = _gather(runs)
    n = len(g.rows)
    cols = list(zip(*g.rows, strict=True))
    ids = b"".join(g.event_ids)
    users = [None if u is None or u not in known_users else u.bytes for u in cols[ROW_USER_ID]]
    times = pa.array(cols[ROW_TIME], _TIME)
    strings = [pa.array(c, pa.string()) for c in cols[1:ROW_TIME] + cols[ROW_TIME + 1 :]]
    events = _stream(
        _EVENT_SCHEMA,
        [
            _fixed16(ids, n),
            pa.array(users, _UUID),
            *strings[:6],
            times,
            _fixed16(np.repeat(np.frombuffer(b"".join(g.sources), dtype="V16"), g.lengths).tobytes(), n),
            *strings[6:],
            pa.array(np.repeat(np.array(g.received, dtype="datetime64[us]"), g.lengths), _TIME),
        ],
    )
    if not g.names:
        return events, None
    per_event = np.array(g.counts, dtype=np.int64)
    properties = _stream(
        _PROPERTY_SCHEMA,
        [
            _fixed16(b"".join(g.property_ids), len(g.names)),
            _fixed16(np.repeat(np.frombuffer(ids, dtype="V16"), per_event).tobytes(), len(g.names)),
            pa.array(g.names, pa.string()),
            pa.array(g.values, pa.string()),
            times.take(pa.array(np.repeat(np.arange(n), per_event))),
        ],
    )
    return events, properties
