"""The event-time window's edge and the context.ip check, against the standard library's own parser."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.config import IngestConfig
from ingest.guards import EARLIEST, checked_ip, oldest_allowed, time_window


def test_oldest_allowed_is_the_first_of_a_month() -> None:
    assert oldest_allowed(dt.datetime(2026, 11, 30, 23, 59), 24) == dt.datetime(2024, 11, 1)
    assert oldest_allowed(dt.datetime(2026, 1, 1), 1) == dt.datetime(2025, 12, 1)
    assert oldest_allowed(dt.datetime(2026, 3, 15), 0) == dt.datetime(2026, 3, 1)
    assert oldest_allowed(dt.datetime(2026, 3, 15), -5) == dt.datetime(2026, 3, 1)
    assert oldest_allowed(dt.datetime(2026, 3, 15), 10**9) == EARLIEST


def test_time_window_survives_an_overflowing_future_limit() -> None:
    received = dt.datetime(2026, 11, 20, 12)
    assert time_window(received, 24, dt.timedelta(hours=1)) == (
        dt.datetime(2024, 11, 1),
        dt.datetime(2026, 11, 20, 13),
    )
    assert time_window(received, 24, dt.timedelta.max)[1] == dt.datetime.max


def _reference(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return value.split("%", 1)[0]


_octet = st.one_of(st.integers(0, 300).map(str), st.from_regex(r"0[0-9]{1,2}", fullmatch=True))


@settings(max_examples=3000)
@given(
    st.one_of(
        st.text(alphabet="0123456789.", max_size=20),
        st.text(alphabet="0123456789abcdefABCDEF:.%", max_size=50),
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda a: a.exploded),
        st.tuples(
            st.sampled_from(["", "::", "::ffff:", "1:2:3:4:5:6:", "1::"]),
            st.lists(_octet, min_size=3, max_size=5),
        ).map(lambda t: t[0] + ".".join(t[1])),
        st.text(max_size=20),
    )
)
def test_checked_ip_agrees_with_ipaddress(value: str) -> None:
    # The inet_pton fast path must accept exactly what ipaddress accepts.
    assert checked_ip(value) == _reference(value)


def test_checked_ip_edge_cases() -> None:
    for value in ("01.2.3.4", "1.2.3", "1.2.3.4.5", "0x1.2.3.4", "1.2.3.4\x00", "\u0661.2.3.4", " 1.2.3.4"):
        assert checked_ip(value) is None, value
    assert checked_ip("::ffff:1.2.3.4") == "::ffff:1.2.3.4"
    assert checked_ip("fe80::1%" + "x" * 100) is None  # too long to be worth parsing


def test_max_past_months_defaults_to_the_raw_retention_window(monkeypatch: pytest.MonkeyPatch) -> None:
    mp = monkeypatch
    mp.delenv("CORP_ASTRO_INGEST_MAX_PAST_MONTHS", raising=False)
    mp.delenv("CORP_ASTRO_RETENTION_RAW_MONTHS", raising=False)
    assert IngestConfig.from_env().max_past_months == 24
    mp.setenv("CORP_ASTRO_RETENTION_RAW_MONTHS", "36")
    assert IngestConfig.from_env().max_past_months == 36
    mp.setenv("CORP_ASTRO_INGEST_MAX_PAST_MONTHS", "6")
    assert IngestConfig.from_env().max_past_months == 6
    with pytest.raises(ValueError, match="negative"):
        IngestConfig(max_past_months=-1)


def test_a_servers_flushers_are_divided_among_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --workers N`` sets CORP_ASTRO_INGEST_WORKERS; each worker then runs its share of the
    server's flushes, at least one."""
    monkeypatch.delenv("CORP_ASTRO_INGEST_FLUSHERS", raising=False)
    monkeypatch.delenv("CORP_ASTRO_INGEST_WORKERS", raising=False)
    assert IngestConfig.from_env().process_flushers == 2
    monkeypatch.setenv("CORP_ASTRO_INGEST_WORKERS", "2")
    assert IngestConfig.from_env().process_flushers == 1
    monkeypatch.setenv("CORP_ASTRO_INGEST_WORKERS", "4")
    assert IngestConfig.from_env().process_flushers == 1
    monkeypatch.setenv("CORP_ASTRO_INGEST_FLUSHERS", "6")
    assert IngestConfig.from_env().process_flushers == 2
    assert IngestConfig(flushers=3, workers=2).process_flushers == 2
