"""The streaming body reader: limits enforced while reading, gzip inflated under the same cap."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from ingest.body import read_body
from ingest.errors import BodyTooLarge, CorruptBody, UnsupportedEncoding

LIMIT = 1000


class Stream:
    """An ASGI receive callable over ``chunks``, recording how much was pulled."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __call__(self) -> dict[str, Any]:
        chunk = self.chunks[self.pulled]
        self.pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < len(self.chunks)}


async def test_plain_body_is_returned_whole() -> None:
    assert (
        await read_body(Stream([b"ab", b"cd"]), limit=LIMIT, content_encoding=None, content_length=None)
        == b"abcd"
    )


async def test_oversized_announced_length_is_refused_before_reading() -> None:
    stream = Stream([b"x" * 10])
    with pytest.raises(BodyTooLarge):
        await read_body(stream, limit=LIMIT, content_encoding=None, content_length=str(LIMIT + 1))
    assert stream.pulled == 0


async def test_oversized_stream_is_refused_at_the_chunk_that_crosses_the_limit() -> None:
    stream = Stream([b"x" * 600, b"x" * 600, b"x" * 600, b"x" * 600])
    with pytest.raises(BodyTooLarge):
        await read_body(stream, limit=LIMIT, content_encoding=None, content_length=None)
    assert stream.pulled == 2


async def test_gzip_is_inflated() -> None:
    data = b'{"batch": []}' * 10
    packed = gzip.compress(data)
    chunks = [packed[:7], packed[7:]]
    assert await read_body(Stream(chunks), limit=LIMIT, content_encoding="gzip", content_length=None) == data


async def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # about 50 KB on the wire
    chunks = [bomb[i : i + 500] for i in range(0, len(bomb), 500)]
    stream = Stream(chunks)
    with pytest.raises(BodyTooLarge):
        await read_body(stream, limit=100_000, content_encoding="gzip", content_length=None)
    assert stream.pulled < 5


@pytest.mark.parametrize(
    "chunks",
    [[b"not gzip at all"], [gzip.compress(b"{}")[:-6]], [gzip.compress(b"{}") + b"trailing"]],
    ids=["garbage", "truncated", "trailing"],
)
async def test_corrupt_gzip_is_a_bad_request(chunks: list[bytes]) -> None:
    with pytest.raises(CorruptBody):
        await read_body(Stream(chunks), limit=LIMIT, content_encoding="gzip", content_length=None)


async def test_other_encodings_are_refused() -> None:
    with pytest.raises(UnsupportedEncoding):
        await read_body(Stream([b"x"]), limit=LIMIT, content_encoding="br", content_length=None)
