"""Request ids: 32 hex digits, unique, and the same random prefix within one process."""

from __future__ import annotations

import re

from core_api.observability import new_request_id


def test_request_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[:16] for i in ids}) == 1
