"""Ingest use cases, free of HTTP: take a Segment request (read, decode, authenticate, map, commit); keys.

A request reads top to bottom in ``collect``: the body (``ingest.body``), the envelope (here), the rows
(``ingest.mapping``), then the group commit (``ingest.pipeline``, which alone calls ``ingest.repository``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from ingest import metrics, repository
from ingest.body import read_body
from ingest.config import IngestConfig
from ingest.errors import (
    AllEventsRejected,
    BodyTooLarge,
    SourceNotFound,
    TooManyEvents,
)
from ingest.mapping import Rejection, RequestInfo, map_events
from ingest.pipeline import Pipeline
from ingest.schemas import BatchEnvelope, CreatedSource, IngestResponse, RejectedEvent, SourceOut
from kernel import audit
from kernel.auth import Source, WriteKeyCache, generate_write_key, hash_write_key, utcnow
from kernel.errors import ValidationError, problem
from kernel.problems import body_error, not_json, wrong_type

if TYPE_CHECKING:
    import asyncpg

    from kernel.db import Database

__all__ = [
    "Collector",
    "Envelope",
    "collect",
    "create_source",
    "decode_request",
    "ingest",
    "list_sources",
    "revoke_source",
]

_envelope_decoder = msgspec.json.Decoder(BatchEnvelope)
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Collector:
    """One process's ingest: its limits, the write-key cache, the database and the group-commit writer."""

    config: IngestConfig
    write_keys: WriteKeyCache
    db: Database
    pipeline: Pipeline

    @classmethod
    def start(cls, db: Database, config: IngestConfig) -> Collector:
        """Start the pipeline's flushers with ``config`` (the settings' ingest section)."""
        pipeline = Pipeline(db, config)
        pipeline.start()
        # The write-key cache is shared by every route that accepts an app's key (ingest, assignment).
        return cls(config, WriteKeyCache(repository.find_active_source), db, pipeline)

    async def close(self) -> None:
        """Flush what is queued, then stop."""
        await self.pipeline.close()


async def collect(
    collector: Collector,
    call: str | None,
    source: Source | None,
    receive: Any,
    *,
    content_encoding: str | None,
    content_length: str | None,
    peer_ip: str | None,
    user_agent: str | None,
) -> IngestResponse:
    """One Segment request, a batch (``call`` None) or a single call, from its body to its answer.

    ``source`` is the caller named by the request's Authorization header, if any; otherwise the body's
    ``writeKey`` must name one. ``receive`` is the request's ASGI ``receive``: the body is read here,
    under the size limit, only once the queue is known to have room.
    """
    config = collector.config
    # Under overload, refusing before reading and parsing keeps the CPU for requests that can commit.
    collector.pipeline.check_room()
    body = await read_body(
        receive,
        limit=config.max_body_bytes,
        content_encoding=content_encoding,
        content_length=content_length,
    )
    received_at = utcnow()
    envelope = decode_request(body, call, config)
    if source is None:
        source = await collector.write_keys.authenticate(collector.db.pool, envelope.write_key)
    return await ingest(
        collector.pipeline,
        envelope,
        source,
        received_at=received_at,
        peer_ip=peer_ip,
        user_agent=user_agent,
        config=config,
    )


@dataclass(slots=True)
class Envelope:
    """A decoded request: its messages (raw for a batch), the batch-level fields and the body's key."""

    items: list[Any]
    sizes: list[int] | None
    write_key: str | None
    sent_at: Any
    context: dict[str, Any] | None
    integrations: dict[str, Any] | None
    call: str | None  # the single-call type, None for a batch
    # JSON can only carry NUL as the escape \u0000; without one in the body, no string holds NUL.
    check_nul: bool = True
    # Encoded size of the batch-level context and integrations, which every event of the batch carries.
    shared_bytes: int = 0


def _may_hold_nul(body: bytes) -> bool:
    """Whether the body has a ``\\u0000`` escape. Most bodies have no backslash at all, and a one-byte
    search (memchr) is several times cheaper than the six-byte one, which then runs only if needed."""
    return b"\\" in body and b"\\u0000" in body


def decode_request(body: bytes, call: str | None, config: IngestConfig) -> Envelope:
    """Decode a batch (``call`` None) or a single call: 400 ``invalid_json`` if the body is not a JSON
    object, 422 if a batch's envelope does not fit (``kernel.problems``, as on every route)."""
    if call is None:
        try:
            env = _envelope_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise body_error(exc, body, BatchEnvelope) from exc
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            raise not_json(body, exc) from exc
        if len(env.batch) > config.max_batch_events:
            raise TooManyEvents(config.max_batch_events)
        # Merged into every event, so they count against each event's size: otherwise one 500 KB body
        # could make thousands of copies of a large context.
        shared = sum(len(_encoder.encode(part)) for part in (env.context, env.integrations) if part)
        if shared > config.max_event_bytes:
            # They are part of every event of the batch.
            raise BodyTooLarge(
                config.max_event_bytes,
                subject="The batch's context and integrations (part of every event)",
                field="body.context",
            )
        return Envelope(
            env.batch,
            None,
            env.writeKey,
            env.sentAt,
            env.context,
            env.integrations,
            None,
            _may_hold_nul(body),
            shared,
        )
    try:
        msg = _any_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise not_json(body, exc) from exc
    if type(msg) is not dict:
        raise wrong_type(msg)
    key = msg.get("writeKey")
    return Envelope(
        [msg], [len(body)], key if type(key) is str else None, None, None, None, call, _may_hold_nul(body)
    )


def _response(call: str | None, rejected: list[Rejection], accepted: int, duplicates: int) -> IngestResponse:
    wire = [RejectedEvent(r.index, r.message_id, r.reason) for r in sorted(rejected, key=lambda r: r.index)]
    if rejected and accepted == 0 and duplicates == 0:
        ordered = sorted(rejected, key=lambda r: r.index)
        raise AllEventsRejected([r.as_dict() for r in ordered], batch=call is None)
    return IngestResponse(success=True, accepted=accepted, duplicates=duplicates, rejected=wire)


async def ingest(
    pipeline: Pipeline,
    envelope: Envelope,
    source: Source,
    *,
    received_at: dt.datetime,
    peer_ip: str | None,
    user_agent: str | None,
    config: IngestConfig,
) -> IngestResponse:
    """Validate and map every message, commit the valid ones, and say what happened to each."""
    info = RequestInfo(
        source_id=source.source_id,
        received_at=received_at,
        peer_ip=peer_ip,
        user_agent=user_agent,
        max_event_bytes=config.max_event_bytes - envelope.shared_bytes,
        max_future=dt.timedelta(seconds=config.max_future_seconds),
        max_past_months=config.max_past_months,
    )
    batch = map_events(
        envelope.items,
        info,
        forced_type=envelope.call,
        sent_at=envelope.sent_at,
        context=envelope.context,
        integrations=envelope.integrations,
        sizes=envelope.sizes,
        check_nul=envelope.check_nul,
    )
    rejected = list(batch.rejected)
    if not batch.rows:
        metrics.record_request(0, 0, rejected)
        return _response(envelope.call, rejected, 0, 0)
    outcome = await pipeline.submit(batch)
    for pos in outcome.failed:
        rejected.append(Rejection(batch.indexes[pos], batch.message_ids[pos], "storage_error"))
    metrics.record_request(outcome.accepted, outcome.duplicates, rejected)
    return _response(envelope.call, rejected, outcome.accepted, outcome.duplicates)


# --- Event sources and their write keys -------------------------------------------------------------


def _out(row: asyncpg.Record) -> SourceOut:
    return SourceOut(row["source_id"], row["name"], row["key_prefix"], row["created_at"], row["revoked_at"])


async def create_source(
    conn: asyncpg.Connection, name: str, *, actor: uuid.UUID | None = None
) -> CreatedSource:
    """Create a source and its write key (returned this once; only its SHA-256 is stored), audited."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError(
            "A source name is 1 to 100 characters.", details=[problem("name", "must be 1 to 100 characters")]
        )
    key = generate_write_key()
    prefix = key[:12]
    row = await repository.insert_source(conn, name, hash_write_key(key), prefix)
    await audit.record(
        conn,
        "key_created",
        actor_user_id=actor,
        subject_id=str(row["source_id"]),
        details={"name": name, "key_prefix": prefix},
    )
    return CreatedSource(row["source_id"], row["name"], prefix, key)


async def list_sources(conn: asyncpg.Connection) -> list[SourceOut]:
    """Every source with its key prefix and revocation time."""
    return [_out(r) for r in await repository.list_sources(conn)]


async def revoke_source(
    conn: asyncpg.Connection,
    source_id: uuid.UUID,
    *,
    cache: WriteKeyCache | None = None,
    actor: uuid.UUID | None = None,
) -> SourceOut:
    """Revoke a source's key, audited. ``cache`` (this process's) forgets it at once; other processes'
    caches expire within their TTL (5 s)."""
    row = await repository.revoke_source(conn, source_id)
    if row is None:
        raise SourceNotFound(f"No source {source_id}.")
    await audit.record(
        conn,
        "key_revoked",
        actor_user_id=actor,
        subject_id=str(source_id),
        details={"name": row["name"], "key_prefix": row["key_prefix"]},
    )
    if cache is not None:
        cache.invalidate()
    return _out(row)
