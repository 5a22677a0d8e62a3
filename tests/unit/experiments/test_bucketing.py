"""Assignment is GrowthBook's: the growthbook SDK (4.x) picks the same variant for every id."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import uuid

import pytest
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook
from growthbook.core import chooseVariation, fnv1a32, gbhash, getBucketRanges

from experiments.bucketing import bucket_ranges, choose_variant, hash_v2
from experiments.bucketing import fnv1a32 as our_fnv1a32
from experiments.definitions import Experiment, Variant, weight

D = decimal.Decimal
# Percentage sets chosen to include float range boundaries (10/20/70 ends a range at
# 0.30000000000000004), near-zero arms and many arms.
SPLITS: list[list[str]] = [
    ["50", "50"],
    ["33.33", "33.33", "33.34"],
    ["10", "20", "70"],
    ["7.78", "12.22", "33.33", "46.67"],
    ["0.01", "99.99"],
    ["14.29", "14.29", "14.28", "14.29", "14.28", "14.29", "14.28"],
]


def _ids(n: int) -> list[str]:
    """UUIDs, short ASCII ids and non-ASCII ids (accents, CJK, RTL, emoji = UTF-16 surrogate pairs)."""
    rng = random.Random(20261126)
    alphabets = ["abcxyz0189-_", "éüßñçøå", "用户测试号", "مستخدم", "😀🚀🎉👩‍💻", "ÀΩЖ€"]
    out: list[str] = []
    for i in range(n):
        kind = i % 4
        if kind < 2:
            out.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        elif kind == 2:
            out.append(f"user-{i}")
        else:
            chars = "".join(
                rng.choice(alphabets[rng.randrange(len(alphabets))]) for _ in range(rng.randint(1, 12))
            )
            out.append(chars + str(i))
    return out


IDS = _ids(100_000)


def _experiment(name: str, pcts: list[str]) -> Experiment:
    now = dt.datetime(2026, 1, 1)
    variants = tuple(Variant(uuid.uuid4(), f"v{i}", None, D(p), i, i == 0) for i, p in enumerate(pcts))
    return Experiment(
        uuid.uuid4(), name, None, "active", dt.date(2026, 1, 1), None, 1, None, now, now, variants
    )


def test_ids_include_non_ascii() -> None:
    assert len(IDS) >= 100_000
    assert sum(not i.isascii() for i in IDS) >= 20_000
    assert any(any(ord(c) > 0xFFFF for c in i) for i in IDS)  # surrogate pairs in UTF-16


def test_fnv1a32_matches_sdk() -> None:
    for value in IDS[:20_000]:
        assert our_fnv1a32(value) == fnv1a32(value)


@pytest.mark.parametrize("pcts", SPLITS, ids=["/".join(s) for s in SPLITS])
def test_same_variant_as_sdk_helpers(pcts: list[str]) -> None:
    weights = [weight(D(p)) for p in pcts]
    theirs = getBucketRanges(len(weights), 1, weights)
    exp = _experiment("checkout-test", pcts)
    assert list(exp.ranges) == theirs
    mismatches = [
        u
        for u in IDS[::4] + IDS[3::8]
        if exp.choose(u).position != chooseVariation(gbhash("checkout-test", u, 2), theirs)
    ]
    assert mismatches == []


def test_same_variant_as_sdk_run_on_100k_ids() -> None:
    """The SDK's public path, GrowthBook.run(Experiment(..., hashVersion=2)), on every id."""
    gb = GrowthBook(attributes={"id": ""})
    mismatches = 0
    for i, user_id in enumerate(IDS):
        pcts = SPLITS[i % len(SPLITS)]
        name = f"exp-{i % len(SPLITS)}"
        gb.set_attributes({"id": user_id})
        result = gb.run(
            GBExperiment(
                key=name,
                variations=list(range(len(pcts))),
                weights=[weight(D(p)) for p in pcts],
                hashVersion=2,
            )
        )
        assert result.inExperiment
        ours = choose_variant(hash_v2(name, user_id), bucket_ranges([weight(D(p)) for p in pcts]))
        mismatches += ours != result.variationId
    assert mismatches == 0


def test_float_boundaries_matter() -> None:
    """An exact basis-point bucketing would disagree with the SDK here; ours must not."""
    pcts = ["10", "20", "70"]
    exp = _experiment("checkout-test", pcts)
    ranges = getBucketRanges(3, 1, [0.1, 0.2, 0.7])

    def basis_points(n: float) -> int:
        b, acc = round(n * 10000), 0
        for i, p in enumerate((1000, 2000, 7000)):
            acc += p
            if b < acc:
                return i
        return -1

    boundary = [
        u
        for u in IDS
        if basis_points(gbhash("checkout-test", u, 2))
        != chooseVariation(gbhash("checkout-test", u, 2), ranges)
    ]
    assert boundary, "the sample should contain users on a float boundary"
    assert all(
        exp.choose(u).position == chooseVariation(gbhash("checkout-test", u, 2), ranges) for u in boundary
    )


def test_weights_are_the_decimal_fractions() -> None:
    assert weight(D("7.78")) == 0.0778
    assert weight(D("33.33")) == 0.3333
    assert 7.78 / 100 != 0.0778  # why the float division is not used


def test_reference_hashes() -> None:
    # Reference values from the research notes (GrowthBook JS and Python SDKs agree on them).
    assert hash_v2("", "a") == 0.0216
    assert gbhash("", "a", 2) == 0.0216
