"""Segment message -> rows: column mapping, skew correction, clamping, and per-event rejection."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import msgspec
import orjson

from ingest.mapping import EVENT_COLUMNS, PROPERTY_COLUMNS, RequestInfo, map_events, message_key
from ingest.mapping.values import message_keys

SOURCE = uuid.UUID("8a0b6a1e-6a86-4b8e-9d39-3d1f4c2b7f10")
RECEIVED = dt.datetime(2026, 11, 20, 12, 0, 0)


def _info(**kw: object) -> RequestInfo:
    values: dict[str, object] = {
        "source_id": SOURCE,
        "received_at": RECEIVED,
        "peer_ip": "10.0.0.9",
        "user_agent": "header-agent",
    }
    values.update(kw)
    return RequestInfo(**values)  # type: ignore[arg-type]


def _raw(*msgs: object) -> list[msgspec.Raw]:
    return [msgspec.Raw(orjson.dumps(m)) for m in msgs]


def _event(batch_rows: tuple[object, ...]) -> dict[str, object]:
    return dict(zip(EVENT_COLUMNS, batch_rows, strict=True))


def _props(rows: list[tuple[object, ...]]) -> dict[str, object]:
    return {r[PROPERTY_COLUMNS.index("property_name")]: r[3] for r in rows}


def test_ledger_key_is_uuid5_of_source_and_message_id() -> None:
    assert message_key(SOURCE, "abc") == uuid.uuid5(SOURCE, "abc")
    assert message_key(SOURCE, "é-ü") == uuid.uuid5(SOURCE, "é-ü")


def test_ledger_keys_of_one_request_equal_uuid5_on_many_inputs() -> None:
    """The pre-hashed namespace gives exactly uuid.uuid5, over many sources and messageIds (ASCII,
    non-ASCII, astral, empty, up to 255 characters), and one request's function never carries state
    from one messageId to the next."""
    rng = random.Random(20)
    alphabet = 'abcXYZ019-_:. éüß漢字😀\u2028\t"'
    for _ in range(50):
        source = uuid.UUID(int=rng.getrandbits(128))
        make = message_keys(source.bytes)
        for _ in range(100):
            mid = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 255)))
            assert make(mid) == uuid.uuid5(source, mid)
            assert make(mid) == uuid.uuid5(source, mid)  # twice: no state leaks between calls
    # And the mapped batch carries those keys, one per event, for the ledger.
    msgs = [{"type": "track", "event": "e", "userId": "u", "messageId": f"m-{i}"} for i in range(200)]
    batch = map_events(_raw(*msgs), _info())
    assert batch.keys == [uuid.uuid5(SOURCE, f"m-{i}") for i in range(200)]


def test_event_ids_are_distinct_uuid7s_in_order_and_not_the_ledger_keys() -> None:
    """Time-ordered event ids land at the right edge of the event tables' indexes; the same message
    sent again gets a new event id (the ledger, keyed by the uuid5, stores it once)."""
    msgs = [{"type": "track", "event": "e", "userId": "u", "messageId": f"m-{i}"} for i in range(300)]
    first = [uuid.UUID(str(r[0])) for r in map_events(_raw(*msgs), _info()).events]
    again = map_events(_raw(*msgs), _info())
    second = [uuid.UUID(str(r[0])) for r in again.events]
    assert len(set(first) | set(second)) == 600
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in first + second)
    assert [u.bytes for u in first] == sorted(u.bytes for u in first)
    assert not set(first) & {uuid.UUID(str(k)) for k in again.keys}


def test_property_ids_are_distinct_uuid7s_in_order() -> None:
    msgs = [
        {"type": "track", "event": "e", "userId": "u", "properties": {str(k): k for k in range(5)}}
        for _ in range(100)
    ]
    ids = [uuid.UUID(str(r[0])) for rows in map_events(_raw(*msgs), _info()).properties for r in rows]
    assert len(ids) == len(set(ids)) == 500
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert [u.bytes for u in ids] == sorted(u.bytes for u in ids)


def test_track_maps_to_columns_and_properties() -> None:
    user = str(uuid.uuid4())
    msg = {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "anonymousId": "anon-1",
        "messageId": "m-1",
        "timestamp": "2026-11-20T11:59:00.000Z",
        "properties": {"category": "commerce", "total": 9.5, "items": [1, 2], "coupon": None},
        "context": {
            "ip": "203.0.113.7",
            "userAgent": "sdk-agent",
            "device": {"id": "dev-1", "model": "x"},
            "library": {"name": "analytics-python", "version": "2.4.0"},
            "sessionId": 1234,
        },
        "integrations": {"All": True},
        "channel": "server",
    }
    batch = map_events(_raw(msg), _info(), sent_at="2026-11-20T11:59:00.000Z")
    assert not batch.rejected
    row = _event(batch.events[0])
    assert uuid.UUID(str(row["event_id"])).version == 7
    assert batch.keys == [uuid.uuid5(SOURCE, "m-1")]
    assert row["user_id"] == uuid.UUID(user)  # a candidate; the flush keeps it only for a known user
    assert row["event_name"] == "Order Completed"
    assert row["event_category"] == "commerce"
    assert row["device_id"] == "dev-1"
    assert row["session_id"] == "1234"
    assert row["ip_address"] == "203.0.113.7"
    assert row["user_agent"] == "sdk-agent"
    assert row["external_user_id"] == user
    assert row["anonymous_id"] == "anon-1"
    assert row["message_id"] == "m-1"
    assert row["source_id"] == SOURCE
    assert row["received_at"] == RECEIVED
    # sentAt == timestamp: the event happened at receivedAt on the server's clock.
    assert row["timestamp"] == RECEIVED
    props = _props(batch.properties[0])
    assert props["category"] == "commerce"
    assert props["total"] == "9.5"
    assert props["items"] == "[1,2]"
    assert props["coupon"] == "null"
    assert props["context.device"] == '{"id":"dev-1","model":"x"}'
    assert props["context.library"] == '{"name":"analytics-python","version":"2.4.0"}'
    assert props["integrations"] == '{"All":true}'
    assert props["$channel"] == "server"
    assert "context.ip" not in props
    assert "context.userAgent" not in props
    ids = [r[0] for r in batch.properties[0]]
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 for i in ids)
    assert all(r[1] == row["event_id"] and r[4] == row["timestamp"] for r in batch.properties[0])


def test_skew_correction_uses_received_minus_sent_minus_timestamp() -> None:
    # The device clock is 1 h fast: it says sentAt 13:00 when the server receives at 12:00.
    msg = {"type": "track", "event": "e", "userId": "u", "timestamp": "2026-11-20T12:59:30+00:00"}
    batch = map_events(_raw(msg), _info(), sent_at="2026-11-20T13:00:00Z")
    assert _event(batch.events[0])["timestamp"] == dt.datetime(2026, 11, 20, 11, 59, 30)
    # A per-message sentAt wins over the batch's; offsets are converted to UTC.
    msg2 = {**msg, "sentAt": "2026-11-20T14:00:00+01:00", "timestamp": "2026-11-20T13:59:00+01:00"}
    batch = map_events(_raw(msg2), _info(), sent_at="2020-01-01T00:00:00Z")
    assert _event(batch.events[0])["timestamp"] == dt.datetime(2026, 11, 20, 11, 59)


def test_no_timestamp_means_received_at_and_no_sent_at_means_as_sent() -> None:
    batch = map_events(_raw({"type": "track", "event": "e", "userId": "u"}), _info())
    assert _event(batch.events[0])["timestamp"] == RECEIVED
    old = {"type": "track", "event": "e", "userId": "u", "timestamp": "2025-03-01T00:00:00Z"}
    batch = map_events(_raw(old), _info())
    assert _event(batch.events[0])["timestamp"] == dt.datetime(2025, 3, 1)


def test_far_future_is_clamped_and_original_kept() -> None:
    msg = {"type": "track", "event": "e", "userId": "u", "timestamp": "2031-01-01T00:00:00Z"}
    batch = map_events(_raw(msg), _info())
    assert _event(batch.events[0])["timestamp"] == RECEIVED
    assert _props(batch.properties[0])["$original_timestamp"] == "2031-01-01T00:00:00Z"
    # Less than an hour ahead is left alone.
    near = {**msg, "timestamp": "2026-11-20T12:30:00Z"}
    batch = map_events(_raw(near), _info())
    assert _event(batch.events[0])["timestamp"] == dt.datetime(2026, 11, 20, 12, 30)


def test_event_name_and_category_per_call_type() -> None:
    msgs = [
        {"type": "page", "name": "Pricing", "userId": "u"},
        {"type": "screen", "userId": "u"},
        {"type": "identify", "userId": "u", "traits": {"plan": "pro", "email": "a@b.c"}},
        {"type": "group", "userId": "u", "groupId": "g1", "traits": {"name": "Acme"}},
        {"type": "alias", "userId": "u", "previousId": "old"},
    ]
    batch = map_events(_raw(*msgs), _info())
    rows = [_event(r) for r in batch.events]
    assert [(r["event_name"], r["event_category"]) for r in rows] == [
        ("Pricing", "page"),
        ("screen", "screen"),
        ("identify", "identify"),
        ("group", "group"),
        ("alias", "alias"),
    ]
    assert _props(batch.properties[2]) == {"plan": "pro", "email": "a@b.c"}
    assert _props(batch.properties[3]) == {"name": "Acme", "$groupId": "g1"}
    assert _props(batch.properties[4]) == {"$previousId": "old"}


def test_batch_context_and_integrations_merge_into_each_item() -> None:
    msgs = [
        {"type": "track", "event": "a", "userId": "u", "context": {"ip": "198.51.100.1"}},
        {"type": "track", "event": "b", "userId": "u"},
    ]
    batch = map_events(
        _raw(*msgs),
        _info(),
        context={"ip": "192.0.2.1", "locale": "en-GB"},
        integrations={"Amplitude": {"session_id": 77}},
    )
    first, second = (_event(r) for r in batch.events)
    assert first["ip_address"] == "198.51.100.1"  # the item's own context wins
    assert second["ip_address"] == "192.0.2.1"
    assert first["session_id"] == second["session_id"] == "77"
    assert _props(batch.properties[1])["context.locale"] == "en-GB"


def test_fallbacks_peer_ip_header_agent_and_truncation() -> None:
    long_agent = "A" * 400
    msg = {"type": "track", "event": "e", "userId": "u", "context": {"userAgent": long_agent}}
    batch = map_events(_raw(msg), _info())
    row = _event(batch.events[0])
    assert row["ip_address"] == "10.0.0.9"
    assert row["user_agent"] == "A" * 255
    assert _props(batch.properties[0])["context.userAgent"] == long_agent
    batch = map_events(_raw({"type": "track", "event": "e", "anonymousId": "a"}), _info())
    row = _event(batch.events[0])
    assert row["user_agent"] == "header-agent"
    assert row["external_user_id"] is None
    assert row["user_id"] is None


def test_each_invalid_event_is_rejected_alone_with_its_reason() -> None:
    msgs = [
        {"type": "track", "event": "ok", "userId": "u", "messageId": "good"},
        {"type": "track", "event": "e", "messageId": "no-ids"},
        {"type": "track", "userId": "u", "messageId": "no-event"},
        {"type": "bogus", "userId": "u", "messageId": "bad-type"},
        {"type": "track", "event": "e", "userId": "u", "timestamp": "yesterday", "messageId": "bad-ts"},
        {"type": "track", "event": "e", "userId": "u", "messageId": "big", "properties": {"x": "y" * 33000}},
        ["not", "an", "object"],
        {"type": "track", "event": "e", "userId": "u", "messageId": "nul", "properties": {"a": "b\x00"}},
        {"type": "track", "event": "e", "userId": "u", "properties": [1]},
        {"type": "track", "event": "x" * 101, "userId": "u"},
        {"type": "track", "event": "e", "userId": {"id": 1}},
    ]
    batch = map_events(_raw(*msgs), _info())
    assert batch.indexes == [0]
    assert [(r.index, r.message_id, r.reason) for r in batch.rejected] == [
        (1, "no-ids", "missing_user_id_and_anonymous_id"),
        (2, "no-event", "missing_event"),
        (3, "bad-type", "invalid_type"),
        (4, "bad-ts", "invalid_timestamp"),
        (5, None, "event_too_large"),
        (6, None, "not_an_object"),
        (7, "nul", "nul_character"),
        (8, None, "invalid_properties"),
        (9, None, "event_name_too_long"),
        (10, None, "invalid_user_id"),
    ]


def test_property_name_over_100_characters_rejects_its_event_first() -> None:
    """A property, trait, context or top-level name over 100 characters rejects its event with
    property_name_too_long, before the checks that come after the names (a NUL, a value that cannot be
    encoded), as each event was checked alone; the others of the request are stored as they are."""
    long = "n" * 101
    ok = {"type": "track", "event": "e", "userId": "u", "properties": {"a": 1, "n" * 100: "x"}}
    msgs: list[dict[str, object]] = [
        {"type": "track", "event": "e", "userId": "u", "messageId": "p", "properties": {long: 1}},
        {"type": "track", "event": "e", "userId": "u", "messageId": "pn", "properties": {long: "\x00"}},
        {
            "type": "identify",
            "userId": "u",
            "messageId": "t",
            "traits": {long[:-7]: 1},
            "properties": {long[:-7]: 2},
        },
        {"type": "track", "event": "e", "userId": "u", "messageId": "c", "context": {long[:-8]: "v"}},
        {"type": "track", "event": "e", "userId": "u", "messageId": "top", long: 1},
        {"type": "track", "event": "e", "userId": "u", "messageId": "nul", "properties": {"a": "\x00"}},
        {
            "type": "track",
            "event": "e",
            "userId": "u",
            "messageId": "late",
            "timestamp": "2099-01-01T00:00:00Z",
            "properties": {long: 1},
        },
    ]
    reasons = ["property_name_too_long"] * 5 + ["nul_character", "property_name_too_long"]
    # Each on its own between two good events (so no other event's name triggers the check), then all.
    for msg, reason in zip(msgs, reasons, strict=True):
        batch = map_events(_raw(ok, msg, ok), _info())
        assert batch.indexes == [0, 2]
        assert [(r.index, r.reason) for r in batch.rejected] == [(1, reason)], msg
        assert [_props(p) for p in batch.properties] == [{"a": "1", "n" * 100: "x"}] * 2
    batch = map_events(_raw(ok, *msgs), _info())
    assert batch.indexes == [0]
    assert [(r.index, r.message_id, r.reason) for r in batch.rejected] == [
        (i, str(m["messageId"]), reason) for i, (m, reason) in enumerate(zip(msgs, reasons, strict=True), 1)
    ]


def test_missing_message_id_gets_a_fresh_one() -> None:
    batch = map_events(_raw({"type": "track", "event": "e", "userId": "u"}) * 2, _info())
    assert len(set(batch.message_ids)) == 2


def test_forced_type_for_single_calls() -> None:
    batch = map_events([{"event": "Clicked", "userId": "u"}], _info(), forced_type="track", sizes=[40])
    assert _event(batch.events[0])["event_name"] == "Clicked"
    batch = map_events([{"userId": "u"}], _info(), forced_type="track", sizes=[40_000])
    assert batch.rejected[0].reason == "event_too_large"


def _times(*stamps: str, **kw: object) -> list[tuple[object, ...]]:
    """(index, reason or stored timestamp) per message with these timestamps and no sentAt."""
    msgs = [{"type": "track", "event": "e", "userId": "u", "timestamp": t} for t in stamps]
    batch = map_events(_raw(*msgs), _info(**kw))
    out: list[tuple[object, ...]] = [(r.index, r.reason) for r in batch.rejected]
    out += [(i, _event(row)["timestamp"]) for i, row in zip(batch.indexes, batch.events, strict=True)]
    return sorted(out, key=lambda x: int(x[0]))  # type: ignore[call-overload]


def test_events_before_the_oldest_retained_month_are_rejected_alone() -> None:
    # Received 2026-11-20 with the default 24 months: the oldest retained month is November 2024.
    assert _times(
        "2024-11-01T00:00:00Z",
        "2024-10-31T23:59:59.999Z",
        "0999-06-15T00:00:00Z",
        "1955-03-01T00:00:00Z",
        "2024-11-01T00:30:00+01:00",  # 2024-10-31 23:30 UTC
    ) == [
        (0, dt.datetime(2024, 11, 1)),
        (1, "timestamp_out_of_range"),
        (2, "timestamp_out_of_range"),
        (3, "timestamp_out_of_range"),
        (4, "timestamp_out_of_range"),
    ]
    # The knob moves the edge: 0 months keeps only the receive month.
    assert _times("2026-10-31T23:59:59Z", "2026-11-01T00:00:00Z", max_past_months=0) == [
        (0, "timestamp_out_of_range"),
        (1, dt.datetime(2026, 11, 1)),
    ]
    # However wide the window, no year before 1000 gets through.
    assert _times("0999-12-31T23:59:59Z", "1000-01-01T00:00:00Z", max_past_months=100_000) == [
        (0, "timestamp_out_of_range"),
        (1, dt.datetime(1000, 1, 1)),
    ]


def test_window_applies_after_skew_correction_and_overflow_is_invalid() -> None:
    def one(timestamp: str, sent_at: str) -> object:
        msg = {"type": "track", "event": "e", "userId": "u", "timestamp": timestamp, "messageId": "m"}
        batch = map_events(_raw(msg), _info(), sent_at=sent_at)
        return batch.rejected[0].reason if batch.rejected else _event(batch.events[0])["timestamp"]

    # A device clock 10 years fast: its "now" is fine once corrected...
    assert one("2036-11-20T11:00:00Z", "2036-11-20T12:00:00Z") == dt.datetime(2026, 11, 20, 11)
    # ...a plausible-looking timestamp that correction puts 30 years back is not.
    assert one("2026-11-20T11:00:00Z", "2056-11-20T12:00:00Z") == "timestamp_out_of_range"
    # Corrections beyond what a datetime holds are rejected per event, never raised.
    assert one("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z") == "invalid_timestamp"
    assert one("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z") == "invalid_timestamp"
    assert one("0001-01-01T00:00:00+05:00", "2026-11-20T12:00:00Z") == "invalid_timestamp"
    # A year past 9999 does not parse.
    assert one("20000-01-01T00:00:00Z", "2026-11-20T12:00:00Z") == "invalid_timestamp"


def test_future_side_is_still_clamped_with_any_window() -> None:
    msg = {"type": "track", "event": "e", "userId": "u", "timestamp": "9999-12-31T23:59:59Z"}
    batch = map_events(_raw(msg), _info(max_future=dt.timedelta.max))  # the limit itself overflows
    assert _event(batch.events[0])["timestamp"] == dt.datetime(9999, 12, 31, 23, 59, 59)
    batch = map_events(_raw(msg), _info(max_past_months=0))
    assert _event(batch.events[0])["timestamp"] == RECEIVED
    assert _props(batch.properties[0])["$original_timestamp"] == "9999-12-31T23:59:59Z"


def test_context_ip_is_stored_only_when_it_is_an_address() -> None:
    def stored(ip: object) -> tuple[object, dict[str, object]]:
        msg = {"type": "track", "event": "e", "userId": "u", "context": {"ip": ip, "locale": "en"}}
        batch = map_events(_raw(msg), _info())
        return _event(batch.events[0])["ip_address"], _props(batch.properties[0])

    assert stored("203.0.113.7")[0] == "203.0.113.7"
    assert stored("2001:db8::1")[0] == "2001:db8::1"
    assert stored("fe80::1%eth0")[0] == "fe80::1"  # the zone means nothing off the client's host
    for bad in ("not-an-ip'); DROP TABLE x;--", "1.2.3.4%eth0", "01.2.3.4", "256.1.1.1", "1.2.3.4 ", "", 42):
        ip, props = stored(bad)
        assert ip == "10.0.0.9", bad  # the request's peer, as Segment does
        assert "context.ip" not in props, bad
        assert props["context.locale"] == "en"


def test_a_type_that_is_not_a_string_is_rejected_alone() -> None:
    # Found by schemathesis: {"type": {}} raised TypeError (unhashable) and the request answered 500.
    msgs = [
        {"type": "track", "event": "ok", "userId": "u"},
        *({"type": bad, "event": "e", "userId": "u"} for bad in ({}, [], ["track"], 1, None, True)),
    ]
    batch = map_events(_raw(*msgs), _info())
    assert batch.indexes == [0]
    assert [(r.index, r.reason) for r in batch.rejected] == [(i, "invalid_type") for i in range(1, 7)]
