"""The per-unit state's sums in one pass (experiments/unit_state_sums.py): a negative cap.

The caps and capped sums are computed from the rows where a capped value is not 0; every other row
counts ``least(0, cap)`` in closed form. That term is 0 unless the cap is negative, so this checks a
cap below 0 (most purchases are refunds) against the live statement, with every unit having an event
(the live statement groups only units with events), some units without purchases, and a ratio over
the capped revenue.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import asyncpg

from tests.integration.experiments.conftest import Actors, Client
from tests.integration.experiments.test_unit_state import EXPOSED, _assign, _copy, _define, _fold, _same


def _events(rng: random.Random, users: list[uuid.UUID]) -> tuple[list[Any], list[Any]]:
    """A session after exposure for every unit; purchases (mostly negative amounts) for some, before
    and after exposure."""
    events: list[Any] = []
    props: list[Any] = []
    for u in users:
        at = EXPOSED + dt.timedelta(hours=rng.uniform(1, 90))
        events.append((uuid.uuid4(), u, None, None, "session", "test", at))
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            at = EXPOSED + dt.timedelta(hours=rng.uniform(-10 * 24, 4 * 24))
            ev = (uuid.uuid4(), u, None, None, "buy", "test", at)
            events.append(ev)
            amount = rng.uniform(1, 50) if rng.random() < 0.04 else rng.uniform(-100, -1)
            props.append((uuid.uuid4(), ev[0], "amount", f"{amount:.2f}", at))
    return events, props


async def test_a_negative_cap_counts_for_the_rows_without_values(
    client: Client, actors: Actors, conn: asyncpg.Connection
) -> None:
    await _define(client, actors)
    rng = random.Random(21)
    users = await _assign(conn, 150, EXPOSED)
    await _copy(conn, *_events(rng, users))
    await _fold(conn)
    rows = await _same(conn)
    assert all(r["c0"] < 0 for r in rows)  # the cap is negative
    assert all(r["y0"] < 0 and r["r0"] < 0 for r in rows)
    # Events not yet folded (the request folds them in) and new units: still the live statement's sums.
    await _copy(conn, *_events(rng, users[:40] + await _assign(conn, 20, EXPOSED)))
    assert all(r["c0"] < 0 for r in await _same(conn))
    await _fold(conn)
    await _same(conn)
