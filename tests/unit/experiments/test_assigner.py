"""The assignment group commit's batching rules, with in-memory statements."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from experiments.assigner import AssignmentBatcher
from experiments.repository import AssignRequest

T = uuid.uuid4()
V = uuid.uuid4()


class FakeDb:
    """Answers each request with its user id; slow enough that requests pile up behind a flush."""

    def __init__(self, fail_user: uuid.UUID | None = None, fatal: bool = False) -> None:
        self.batches: list[int] = []
        self.singles = 0
        self.fail_user = fail_user
        self.fatal = fatal
        self.running = 0
        self.max_running = 0

    async def batch(self, wanted: Sequence[AssignRequest]) -> list[Any]:
        self.batches.append(len(wanted))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(0.01)
            if self.fatal:
                raise ConnectionResetError("gone")
            if any(w[1] == self.fail_user for w in wanted):
                raise ValueError("bad row")
            return [{"user": w[1], "new_variant": None} for w in wanted]
        finally:
            self.running -= 1

    async def one(self, w: AssignRequest) -> Any:
        self.singles += 1
        if w[1] == self.fail_user:
            raise ValueError("bad row")
        return {"user": w[1], "new_variant": None}


def _batcher(db: FakeDb, **kw: Any) -> AssignmentBatcher:
    return AssignmentBatcher(db.batch, db.one, **kw)


async def _submit(b: AssignmentBatcher, user: uuid.UUID) -> Any:
    return await b.submit(T, user, V, 1, uuid.uuid4())


async def test_concurrent_requests_share_statements() -> None:
    db = FakeDb()
    b = _batcher(db, max_inflight=2, max_batch=64)
    users = [uuid.uuid4() for _ in range(300)]
    got = await asyncio.gather(*(_submit(b, u) for u in users))
    assert [g["user"] for g in got] == users
    assert sum(db.batches) == 300
    assert max(db.batches) <= 64
    assert len(db.batches) <= 10
    assert db.max_running == 2


async def test_a_lone_request_is_not_delayed() -> None:
    db = FakeDb()
    b = _batcher(db)
    got = await asyncio.wait_for(_submit(b, u := uuid.uuid4()), 1.0)
    assert got == {"user": u, "new_variant": None}
    assert db.batches == [1]


async def test_duplicate_requests_share_one_row() -> None:
    db = FakeDb()
    b = _batcher(db, max_inflight=1)
    u = uuid.uuid4()
    first = await asyncio.gather(*(_submit(b, u) for _ in range(5)))
    assert all(g == {"user": u, "new_variant": None} for g in first)
    # All five were queued before the flush began: one statement, one row.
    assert db.batches == [1]


async def test_a_bad_row_fails_only_its_request() -> None:
    bad = uuid.uuid4()
    db = FakeDb(fail_user=bad)
    b = _batcher(db, max_inflight=1)
    users = [uuid.uuid4() for _ in range(6)]
    got = await asyncio.gather(
        *(_submit(b, u) for u in [*users[:3], bad, *users[3:]]), return_exceptions=True
    )
    assert isinstance(got[3], ValueError)
    assert [g["user"] for i, g in enumerate(got) if i != 3] == users
    assert db.batches == [7]
    assert db.singles == 7  # the failed batch, retried row by row


async def test_a_lost_connection_fails_the_batch_without_row_retries() -> None:
    db = FakeDb(fatal=True)
    b = _batcher(db)
    got = await asyncio.gather(*(_submit(b, uuid.uuid4()) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(g, ConnectionResetError) for g in got)
    assert db.singles == 0
    # Later requests are served again once the database is back.
    db.fatal = False
    assert (await _submit(b, u := uuid.uuid4())) == {"user": u, "new_variant": None}


async def test_close_waits_for_running_flushes() -> None:
    db = FakeDb()
    b = _batcher(db)
    pending = asyncio.gather(*(_submit(b, uuid.uuid4()) for _ in range(20)))
    await asyncio.sleep(0)
    await b.close()
    assert db.running == 0
    assert sum(db.batches) == 20
    assert len(await asyncio.wait_for(pending, 1.0)) == 20


@pytest.mark.parametrize("inflight", [1, 3])
async def test_inflight_bound(inflight: int) -> None:
    db = FakeDb()
    b = _batcher(db, max_inflight=inflight, max_batch=4)
    await asyncio.gather(*(_submit(b, uuid.uuid4()) for _ in range(40)))
    assert db.max_running == inflight
