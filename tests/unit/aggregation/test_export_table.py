"""The export's Arrow shaping: ids kept as UUIDs, every property of every event in its JSON object."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.exports import EXPORT_SCHEMA, export_table, properties_json

_props = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=5)


def _uuids(ids: list[uuid.UUID | None]) -> pa.Array:
    storage = pa.array([u.bytes if u else None for u in ids], pa.binary(16))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def _properties(rows: list[tuple[uuid.UUID, str, str]]) -> pa.Table:
    return pa.table(
        {
            "event_id": _uuids([r[0] for r in rows]),
            "property_name": pa.array([r[1] for r in rows], pa.string()),
            "property_value": pa.array([r[2] for r in rows], pa.string()),
        }
    )


@settings(max_examples=200)
@given(st.lists(_props, max_size=8), st.randoms(use_true_random=False))
def test_properties_json_holds_each_events_properties_in_order(
    per_event: list[list[tuple[str, str]]], rnd: random.Random
) -> None:
    ids = [uuid.uuid4() for _ in per_event]
    rows = [(i, k, v) for i, props in zip(ids, per_event, strict=True) for k, v in props]
    # Rows of different events arrive interleaved (each event keeping its own rows in order),
    # and a property of an event outside the slice is ignored.
    owners = [r[0] for r in rows]
    rnd.shuffle(owners)
    queues = {i: iter([r for r in rows if r[0] == i]) for i in ids}
    rows = [next(queues[owner]) for owner in owners]
    rows.append((uuid.uuid4(), "orphan", "x"))

    out = properties_json(pa.chunked_array([_uuids(list(ids))], pa.uuid()), _properties(rows))
    assert out.type == pa.string()
    # Pairs, not a dict: duplicate names and their order are kept as stored.
    assert [json.loads(o, object_pairs_hook=list) for o in out.to_pylist()] == per_event


def test_properties_json_escapes_what_json_needs() -> None:
    e = uuid.uuid4()
    nasty = 'a "quoted" \\ back\\slash, tab\t, newline\n, bell\x07, nul\x00 and ünï€ode 🎉'
    out = properties_json(pa.chunked_array([_uuids([e])], pa.uuid()), _properties([(e, 'k"\n', nasty)]))
    text = out.to_pylist()[0]
    assert json.loads(text) == {'k"\n': nasty}
    assert "\x07" not in text
    assert "\x00" not in text


def test_export_table_keeps_ids_labels_utc_and_fills_empty_objects() -> None:
    a, b, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ts = dt.datetime(2026, 3, 10, 12, 30, 1, 123456)
    text = {name: pa.array(["x", None], pa.string()) for name in EXPORT_SCHEMA.names}
    events = pa.table(
        {
            **text,
            "event_id": _uuids([a, b]),
            "user_id": _uuids([user, None]),
            "source_id": _uuids([None, None]),
            "timestamp": pa.array([ts, ts], pa.timestamp("us")),
            "created_at": pa.array([ts, ts], pa.timestamp("us")),
            "received_at": pa.array([None, ts], pa.timestamp("us")),
        }
    ).drop_columns(["properties"])
    # Split in two record batches, as the driver returns a long read.
    events = pa.concat_tables([events.slice(0, 1), events.slice(1)])
    out = export_table(events, _properties([(b, "plan", "pro"), (b, "screen", 'a "b"')]))
    assert out.schema == EXPORT_SCHEMA
    assert out["event_id"].to_pylist() == [a, b]
    assert out["user_id"].to_pylist() == [user, None]
    assert out["timestamp"].to_pylist() == [ts.replace(tzinfo=dt.UTC)] * 2
    assert [json.loads(p) for p in out["properties"].to_pylist()] == [{}, {"plan": "pro", "screen": 'a "b"'}]
