"""Deterministic variant choice, bit-for-bit the same as GrowthBook's SDKs with ``hashVersion: 2``.

A GrowthBook SDK given the experiment's name as ``key``/``seed``, its variants in ``position`` order and
``weights = traffic_percentage / 100`` (coverage 1) computes the same variant for every user id as
this module, so a client can bucket locally and the server's stored assignment agrees.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bucket_ranges", "choose_variant", "fnv1a32", "hash_v2"]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a32(value: str) -> int:
    """FNV-1a 32-bit over UTF-16 code units, as the JS SDK's ``charCodeAt`` loop hashes strings.

    For ASCII the code units are the bytes; a UTF-8 version would differ for every non-ASCII id.
    """
    h = _FNV_OFFSET
    if value.isascii():
        for b in value.encode("ascii"):
            h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
        return h
    data = value.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def hash_v2(seed: str, user_id: str) -> float:
    """GrowthBook hash v2: a float in [0, 1) with 10,000 buckets."""
    return (fnv1a32(str(fnv1a32(seed + user_id))) % 10000) / 10000


def bucket_ranges(weights: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """GrowthBook's ``getBucketRanges`` with coverage 1, float arithmetic included.

    The float cumulative sums are kept on purpose: an exact basis-point version disagrees with the SDKs
    for the few users whose hash sits on a range boundary (0.0778 vs 0.07780000000000001).
    Weights must already be valid (non-negative, summing to ~1): the API guarantees a sum of 100.00%,
    whereas the SDK would silently fall back to equal weights.
    """
    ranges: list[tuple[float, float]] = []
    cumulative = 0.0
    for w in weights:
        start = cumulative
        cumulative += w
        ranges.append((start, start + w))
    return tuple(ranges)


def choose_variant(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """Index of the first range holding ``n`` (``start <= n < end``), or -1 when none does."""
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return -1
