"""decode_request: which bodies can hold a NUL (the per-event NUL scan is skipped for the others)."""

from __future__ import annotations

import pytest

from ingest.config import IngestConfig
from ingest.service import decode_request


@pytest.mark.parametrize(
    ("body", "may_hold_nul"),
    [
        (rb'{"batch": [{"type": "track", "event": "a\u0000b", "userId": "u"}]}', True),
        (
            rb'{"batch": [{"type": "track", "event": "\\u0000", "userId": "u"}]}',
            True,
        ),  # an escaped backslash first
        (rb'{"batch": [{"type": "track", "event": "a\u00e9\n", "userId": "u"}]}', False),
        (b'{"batch": [{"type": "track", "event": "plain", "userId": "u"}]}', False),
    ],
)
def test_a_batch_may_hold_nul_only_with_the_escape(body: bytes, may_hold_nul: bool) -> None:
    assert decode_request(body, None, IngestConfig()).check_nul is may_hold_nul


def test_a_single_call_may_hold_nul_only_with_the_escape() -> None:
    assert decode_request(rb'{"event": "x\u0000", "userId": "u"}', "track", IngestConfig()).check_nul
    assert not decode_request(b'{"event": "x", "userId": "u"}', "track", IngestConfig()).check_nul
