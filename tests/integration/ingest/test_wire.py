"""The Segment HTTP Tracking API as an SDK sees it: statuses, bodies, and the rows that land."""

from __future__ import annotations

import base64
import gzip
import uuid

import asyncpg
import orjson
import pytest
from litestar.testing import AsyncTestClient

from ingest import service
from tests.integration.ingest.conftest import KeyedSource, count, track

Client = AsyncTestClient  # type: ignore[type-arg]


def _batch(*msgs: dict[str, object], **extra: object) -> dict[str, object]:
    return {"batch": list(msgs), "sentAt": "2026-11-20T10:00:01.000Z", **extra}


def _assert_error(r: object, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    body: dict[str, object] = r.json()  # type: ignore[attr-defined]
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


async def test_batch_stores_events_and_properties(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    user_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (user_id, email, password_hash, first_name, last_name) VALUES ($1, 'a@b.c', 'x', 'A', 'B')",
        user_id,
    )
    msgs = [
        track("m1", userId=str(user_id), context={"device": {"id": "d1"}, "ip": "203.0.113.5"}),
        track("m2", userId="not-a-known-user"),
        track("m3", userId=str(uuid.uuid4())),  # UUID-shaped but not a user: kept, unlinked
    ]
    r = await client.post("/v1/batch", json=_batch(*msgs), headers=source.auth)
    assert r.status_code == 200
    assert r.json() == {"success": True, "accepted": 3, "duplicates": 0, "rejected": []}
    rows = {r["message_id"]: r for r in await conn.fetch("SELECT * FROM analytics_events")}
    assert rows["m1"]["user_id"] == user_id
    assert rows["m1"]["device_id"] == "d1"
    assert rows["m1"]["ip_address"] == "203.0.113.5"
    assert rows["m2"]["user_id"] is None
    assert rows["m2"]["external_user_id"] == "not-a-known-user"
    assert rows["m3"]["user_id"] is None
    assert all(r["event_id"].version == 7 for r in rows.values())  # time-ordered, made at ingest
    # The ledger holds each message's key, uuid5(source, messageId), not its event id.
    keys = {r[0] for r in await conn.fetch("SELECT message_key FROM ingest_message_ids")}
    assert keys == {uuid.uuid5(source.source_id, m) for m in rows}
    assert all(r["source_id"] == source.source_id for r in rows.values())
    assert all(r["ip_address"] for r in rows.values())
    props = await conn.fetch(
        "SELECT property_name, property_value FROM event_properties WHERE event_id = $1",
        rows["m2"]["event_id"],
    )
    assert {p["property_name"]: p["property_value"] for p in props} == {"plan": "pro", "seats": "3"}
    # Every property row belongs to an event, on the event's own timestamp.
    assert (
        await count(
            conn,
            "event_properties p",
            'NOT EXISTS (SELECT 1 FROM analytics_events e WHERE e.event_id = p.event_id AND e."timestamp" = p."timestamp")',
        )
        == 0
    )


@pytest.mark.parametrize(
    "path", ["/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias"]
)
async def test_single_call_routes(
    client: Client, source: KeyedSource, conn: asyncpg.Connection, path: str
) -> None:
    call = path.rsplit("/", 1)[1]
    body = {"userId": "u1", "messageId": f"single-{call}", "event": "Clicked", "writeKey": source.write_key}
    r = await client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    name = await conn.fetchval("SELECT event_name FROM analytics_events")
    assert name == ("Clicked" if call == "track" else call)


async def test_swift_alias_and_batch_level_context(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    body = _batch(
        track("s1"),
        context={"ip": "198.51.100.4", "library": {"name": "analytics-swift"}},
        integrations={"Actions Amplitude": {"session_id": 1700000000}},
    )
    r = await client.post(
        "/v1/b",
        content=orjson.dumps(body),
        headers={**source.auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200
    row = await conn.fetchrow("SELECT ip_address, session_id FROM analytics_events")
    assert row["ip_address"] == "198.51.100.4"
    assert row["session_id"] == "1700000000"
    names = {r[0] for r in await conn.fetch("SELECT property_name FROM event_properties")}
    assert {"context.library", "integrations"} <= names


@pytest.mark.parametrize("with_colon", [True, False])
async def test_basic_auth_with_or_without_colon(
    client: Client, source: KeyedSource, with_colon: bool
) -> None:
    raw = source.write_key + (":" if with_colon else "")
    headers = {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
    r = await client.post("/v1/batch", json=_batch(track("a")), headers=headers)
    assert r.status_code == 200


async def test_write_key_in_body(client: Client, source: KeyedSource) -> None:
    r = await client.post("/v1/batch", json=_batch(track("a"), writeKey=source.write_key))
    assert r.status_code == 200


@pytest.mark.parametrize(
    "headers_or_body",
    [
        {},
        {"headers": {"Authorization": "Basic " + base64.b64encode(b"ca_wk_nope:").decode()}},
        {"headers": {"Authorization": "Basic !!!not-base64"}},
        {"writeKey": "ca_wk_nope"},
    ],
    ids=["missing", "unknown-basic", "malformed-basic", "unknown-body"],
)
async def test_bad_write_key_is_401(
    client: Client, conn: asyncpg.Connection, headers_or_body: dict[str, object]
) -> None:
    headers = headers_or_body.get("headers") or {}
    extra = {k: v for k, v in headers_or_body.items() if k != "headers"}
    r = await client.post("/v1/batch", json=_batch(track("a"), **extra), headers=headers)  # type: ignore[arg-type]
    _assert_error(r, 401, r.json()["code"])
    assert await count(conn, "analytics_events") == 0


async def test_revoked_key_is_refused_at_once_in_process(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    assert (await client.post("/v1/batch", json=_batch(track("a")), headers=source.auth)).status_code == 200
    cache = client.app.state.write_keys
    async with conn.transaction():
        await service.revoke_source(conn, source.source_id, cache=cache)
    _assert_error(
        await client.post("/v1/batch", json=_batch(track("b")), headers=source.auth), 401, "unauthorized"
    )
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY created_at")]
    assert actions == ["key_created", "key_revoked"]


async def test_gzip_body(client: Client, source: KeyedSource, conn: asyncpg.Connection) -> None:
    body = gzip.compress(orjson.dumps(_batch(*(track(f"g{i}") for i in range(50)))))
    r = await client.post("/v1/batch", content=body, headers={**source.auth, "Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.json()["accepted"] == 50
    assert await count(conn, "analytics_events") == 50


async def test_corrupt_gzip_is_400(client: Client, source: KeyedSource) -> None:
    r = await client.post(
        "/v1/batch", content=b"\x1f\x8b\x08garbage", headers={**source.auth, "Content-Encoding": "gzip"}
    )
    body = _assert_error(r, 400, "invalid_gzip")
    assert body["details"][0]["field"] == "body"


async def test_gzip_bomb_is_413(client: Client, source: KeyedSource) -> None:
    # 2 MB of JSON whitespace inside a valid batch, about 2 KB compressed: small on the wire, too big inflated.
    inflated = b'{"batch": []' + b" " * 2_000_000 + b"}"
    r = await client.post(
        "/v1/batch", content=gzip.compress(inflated), headers={**source.auth, "Content-Encoding": "gzip"}
    )
    body = _assert_error(r, 413, "payload_too_large")
    assert body["message"] == "The decompressed request body is over the 500 KB limit (512000 bytes)."
    assert body["details"] == [{"field": "body", "message": "at most 512000 bytes"}]


async def test_unsupported_encoding_is_400(client: Client, source: KeyedSource) -> None:
    r = await client.post("/v1/batch", content=b"{}", headers={**source.auth, "Content-Encoding": "br"})
    body = _assert_error(r, 400, "unsupported_content_encoding")
    assert body["details"] == [
        {
            "field": "header.Content-Encoding",
            "message": "must be one of: gzip, identity",
            "allowed": ["gzip", "identity"],
        }
    ]


async def test_body_over_500kb_is_413(client: Client, source: KeyedSource, conn: asyncpg.Connection) -> None:
    msgs = [track(f"big{i}", properties={"pad": "x" * 20_000}) for i in range(30)]
    r = await client.post("/v1/batch", json=_batch(*msgs), headers=source.auth)
    body = _assert_error(r, 413, "payload_too_large")
    assert "512000 bytes" in body["message"]
    assert await count(conn, "analytics_events") == 0


async def test_more_than_2500_events_is_413(client: Client, source: KeyedSource) -> None:
    msgs = [{"type": "track", "event": "e", "userId": "u"} for _ in range(2501)]
    r = await client.post("/v1/batch", json=_batch(*msgs), headers=source.auth)
    body = _assert_error(r, 413, "payload_too_large")
    assert body["message"] == "The batch is over the limit of 2500 events."
    assert body["details"] == [{"field": "body.batch", "message": "at most 2500 events"}]


# The error contract (docs/errors.md): a body that is not a JSON object is 400 invalid_json, as on every
# route (it was invalid_body here); a JSON object that is not a batch is 422 validation_error.
@pytest.mark.parametrize(
    ("content", "status", "code", "details"),
    [
        (
            b"{not json",
            400,
            "invalid_json",
            [{"field": "body", "message": "JSON is malformed: object keys must be strings (byte 1)"}],
        ),
        (b"[1, 2]", 400, "invalid_json", [{"field": "body", "message": "Expected `object`, got `array`"}]),
        (
            b'{"batch": {"type": "track"}}',
            422,
            "validation_error",
            [{"field": "body.batch", "message": "Expected `array`, got `object`"}],
        ),
        (b'{"nobatch": []}', 422, "validation_error", [{"field": "body.batch", "message": "is required"}]),
    ],
    ids=["not-json", "not-an-object", "batch-not-a-list", "no-batch"],
)
async def test_unreadable_bodies(
    client: Client, source: KeyedSource, content: bytes, status: int, code: str, details: object
) -> None:
    body = _assert_error(await client.post("/v1/batch", content=content, headers=source.auth), status, code)
    assert body["details"] == details


async def test_single_call_that_is_not_an_object_is_400(client: Client, source: KeyedSource) -> None:
    _assert_error(await client.post("/v1/track", content=b"[]", headers=source.auth), 400, "invalid_json")


async def test_invalid_events_are_rejected_alone(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    msgs = [
        track("ok-1"),
        {"type": "track", "event": "e", "messageId": "no-ids"},
        {"type": "track", "userId": "u", "messageId": "no-event"},
        {"type": "nonsense", "userId": "u", "messageId": "bad-type"},
        track("bad-ts", timestamp="not a time"),
        track("too-big", properties={"pad": "x" * 33_000}),
        track("ok-2"),
    ]
    r = await client.post("/v1/batch", json=_batch(*msgs), headers=source.auth)
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "accepted": 2,
        "duplicates": 0,
        "rejected": [
            {"index": 1, "messageId": "no-ids", "reason": "missing_user_id_and_anonymous_id"},
            {"index": 2, "messageId": "no-event", "reason": "missing_event"},
            {"index": 3, "messageId": "bad-type", "reason": "invalid_type"},
            {"index": 4, "messageId": "bad-ts", "reason": "invalid_timestamp"},
            {"index": 5, "messageId": None, "reason": "event_too_large"},
        ],
    }
    assert sorted(r["message_id"] for r in await conn.fetch("SELECT message_id FROM analytics_events")) == [
        "ok-1",
        "ok-2",
    ]


async def test_all_invalid_is_400_with_the_same_details(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    msgs = [
        {"type": "track", "event": "e", "messageId": "x"},
        {"type": "track", "userId": "u", "messageId": "y"},
    ]
    body = _assert_error(
        await client.post("/v1/batch", json=_batch(*msgs), headers=source.auth), 400, "invalid_events"
    )
    # details is a list of {field, message} like every error's, with the event's index, messageId, reason.
    assert body["details"] == [
        {
            "field": "body.batch[0]",
            "message": "missing user id and anonymous id",
            "index": 0,
            "messageId": "x",
            "reason": "missing_user_id_and_anonymous_id",
        },
        {
            "field": "body.batch[1]",
            "message": "missing event",
            "index": 1,
            "messageId": "y",
            "reason": "missing_event",
        },
    ]
    assert await count(conn, "analytics_events") == 0


async def test_oversized_single_call_is_400_with_details(client: Client, source: KeyedSource) -> None:
    msg = {**track("huge"), "properties": {"pad": "x" * 40_000}}
    body = _assert_error(await client.post("/v1/track", json=msg, headers=source.auth), 400, "invalid_events")
    assert body["details"] == [
        {
            "field": "body",
            "message": "event too large",
            "index": 0,
            "messageId": "huge",
            "reason": "event_too_large",
        }
    ]


async def test_batch_context_counts_against_every_events_size(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    # The batch's context is merged into each event: it may not multiply one 500 KB body into many MB.
    huge = {"pad": "x" * 33_000}
    r = await client.post("/v1/batch", json=_batch(track("a"), context=huge), headers=source.auth)
    _assert_error(r, 413, "payload_too_large")
    assert await count(conn, "analytics_events") == 0

    shared = {"pad": "x" * 20_000}
    small, large = track("small"), {**track("large"), "properties": {"pad": "y" * 14_000}}
    r = await client.post("/v1/batch", json=_batch(small, large, context=shared), headers=source.auth)
    assert r.status_code == 200, r.text
    # Too large to be decoded, so its messageId is unknown (as for any oversized event).
    assert r.json()["rejected"] == [{"index": 1, "messageId": None, "reason": "event_too_large"}]
    # The accepted event carries the batch's context as a property, as Segment merges it.
    assert await conn.fetchval(
        "SELECT length(property_value) FROM event_properties WHERE property_name = 'context.pad'"
    ) == 20_000  # fmt: skip


async def test_empty_batch_is_success(client: Client, source: KeyedSource) -> None:
    r = await client.post("/v1/batch", json=_batch(), headers=source.auth)
    assert r.json() == {"success": True, "accepted": 0, "duplicates": 0, "rejected": []}


async def test_far_future_timestamp_is_clamped(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    msg = track("future", timestamp="2099-01-01T00:00:00Z")
    r = await client.post("/v1/batch", json={"batch": [msg]}, headers=source.auth)
    assert r.status_code == 200
    row = await conn.fetchrow('SELECT "timestamp", received_at, event_id FROM analytics_events')
    assert row["timestamp"] == row["received_at"]
    kept = await conn.fetchval(
        "SELECT property_value FROM event_properties WHERE property_name = '$original_timestamp'"
    )
    assert kept == "2099-01-01T00:00:00Z"


async def test_forwarded_for_is_ignored_from_untrusted_peers(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    r = await client.post(
        "/v1/batch", json=_batch(track("xff")), headers={**source.auth, "X-Forwarded-For": "203.0.113.99"}
    )
    assert r.status_code == 200
    assert await conn.fetchval("SELECT ip_address FROM analytics_events") != "203.0.113.99"


async def test_deeply_nested_values(client: Client, source: KeyedSource, conn: asyncpg.Connection) -> None:
    deep = b"[" * 300 + b"]" * 300
    nested = b'{"type":"track","event":"e","userId":"u","messageId":"deep","properties":{"a":' + deep + b"}}"
    body = b'{"batch":[' + nested + b',{"type":"track","event":"e","userId":"u","messageId":"flat"}]}'
    r = await client.post("/v1/batch", content=body, headers=source.auth)
    assert r.status_code == 200
    assert r.json()["accepted"] == 2
    stored = await conn.fetchval("SELECT property_value FROM event_properties WHERE property_name = 'a'")
    assert stored == deep.decode()
    big = b'{"type":"track","event":"e","userId":"u","properties":{"n":123456789012345678901234567890}}'
    r = await client.post("/v1/track", content=big, headers=source.auth)
    assert r.status_code == 200
    assert await count(conn, "event_properties", "property_value = '123456789012345678901234567890'") == 1
    # Deeper than the decoder goes: the event, or the whole body, is unreadable JSON (never a 500).
    abyss = b"[" * 20_000 + b"]" * 20_000
    r = await client.post("/v1/batch", content=b'{"batch":[' + abyss + b"]}", headers=source.auth)
    assert r.status_code == 400
    assert r.json()["code"] in {"invalid_json", "invalid_events"}
    r = await client.post("/v1/track", content=abyss, headers=source.auth)
    body = _assert_error(r, 400, "invalid_json")
    assert body["details"] == [{"field": "body", "message": "is nested too deeply"}]
