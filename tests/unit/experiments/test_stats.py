"""experiments.stats against reference engines.

Golden values were produced by gbstats 0.8.0 (numpy 1.26.4, scipy 1.17.1, Python 3.11) and statsmodels
0.15.0 in a throwaway virtualenv, not a project dependency (gbstats pins numpy<2):
``ProportionStatistic(n, sum)``; ``TwoSidedTTest(a, b, FrequentistConfig(alpha, difference_type=...))``;
``SequentialTwoSidedTTest(a, b, SequentialConfig(alpha, difference_type="absolute"))`` (tuning 5000);
``EffectBayesianABTest(a, b, EffectBayesianConfig())``; ``gbstats.utils.check_srm``;
``statsmodels.stats.power.NormalIndPower``.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.stats import (
    ProportionStats,
    SampleMeanStats,
    chance_to_beat_control,
    holm,
    minimum_detectable_effect,
    normal_power,
    required_nobs1,
    sequential_test,
    srm_p_value,
    welch_test,
)

# (control (users, conversions), treatment, alpha) -> gbstats 0.8.0 outputs.
GBSTATS_0_8_0 = [
    {'control': (10000, 1000), 'treatment': (10000, 1100), 'alpha': 0.05, 'abs_est': 0.009999999999999995, 'abs_ci': (0.0015035439810862743, 0.018496456018913716), 'p': 0.021068257468733975, 'rel_est': 0.09999999999999995, 'rel_ci': (0.010864708144846927, 0.189135291855153), 'rel_p': 0.027889528764600602, 'seq_p': 0.43372021342570605, 'seq_ci': (-0.0035552372713726008, 0.02355523727137259), 'ctw': 0.9860609494573318},
    {'control': (10000, 1000), 'treatment': (9800, 1020), 'alpha': 0.05, 'abs_est': 0.004081632653061218, 'abs_ci': (-0.004352462752834565, 0.012515728058957001), 'p': 0.34285016997684425, 'rel_est': 0.04081632653061218, 'rel_ci': (-0.04521518638335918, 0.12684783944458355), 'rel_p': 0.3524178212271989, 'seq_p': 1.0, 'seq_ci': (-0.009369265394920097, 0.017532530701042534), 'ctw': 0.8237967666855521},
    {'control': (150, 12), 'treatment': (160, 25), 'alpha': 0.05, 'abs_est': 0.07625, 'abs_ci': (0.004891542215909053, 0.14760845778409093), 'p': 0.03631793325319865, 'rel_est': 0.953125, 'rel_ci': (-0.3241640193714548, 2.230414019371455), 'rel_p': 0.1430126908874063, 'seq_p': 0.5891023842157679, 'seq_ci': (-0.08337404878913403, 0.23587404878913404), 'ctw': 0.9290288754456383},
    {'control': (1000000, 50000), 'treatment': (1000000, 51500), 'alpha': 0.05, 'abs_est': 0.0014999999999999944, 'abs_ci': (0.0008916281053867741, 0.0021083718946132146), 'p': 1.3484957601672676e-06, 'rel_est': 0.029999999999999888, 'rel_ci': (0.01765125503362323, 0.04234874496637654), 'rel_p': 1.921414110261921e-06, 'seq_p': 0.0004802652536358323, 'seq_ci': (0.00033614318591939935, 0.0026638568140805894), 'ctw': 0.9999990393600411},
    {'control': (2000, 300), 'treatment': (2100, 250), 'alpha': 0.1, 'abs_est': -0.030952380952380953, 'abs_ci': (-0.04849481429466504, -0.01340994761009687), 'p': 0.003717426979295446, 'rel_est': -0.20634920634920637, 'rel_ci': (-0.3104581343893582, -0.1022402783090545), 'rel_p': 0.0011197275510062, 'seq_p': 0.07271184622552151, 'seq_ci': (-0.060475747109047046, -0.0014290147957148613), 'ctw': 0.0005552242238345527},
]  # fmt: skip

# (users, weights) -> gbstats 0.8.0 check_srm
SRM_GOLDEN = [
    ([10000, 10000, 9800], [1 / 3, 1 / 3, 1 / 3], 0.26124884959037464),
    ([5000, 5200], [0.5, 0.5], 0.0476703806561615),
    ([4000, 6100], [0.4, 0.6], 0.416536641434336),
    ([1000, 1100, 0], [0.5, 0.5, 0.0], 0.09246247606291999),
    ([100500, 99500], [0.5, 0.5], 0.025347318677468325),
    ([3334, 3333, 3333], [0.3333, 0.3333, 0.3334], 0.9997000599835045),
]

TOL = 1e-6


def _pair(case: dict[str, object]) -> tuple[ProportionStats, ProportionStats]:
    (na, sa), (nb, sb) = case["control"], case["treatment"]  # type: ignore[misc]
    return ProportionStats.of(na, sa), ProportionStats.of(nb, sb)


def _close(x: float, y: float, tol: float = TOL) -> bool:
    return math.isclose(x, y, rel_tol=tol, abs_tol=tol * 1e-3)


@pytest.mark.parametrize("case", GBSTATS_0_8_0)
def test_absolute_welch_matches_gbstats(case: dict[str, object]) -> None:
    a, b = _pair(case)
    r = welch_test(a, b, alpha=case["alpha"])  # type: ignore[arg-type]
    assert r is not None
    assert r.estimate == pytest.approx(case["abs_est"], abs=TOL)
    assert r.ci == pytest.approx(case["abs_ci"], abs=TOL)
    assert r.p_value == pytest.approx(case["p"], abs=TOL)
    assert _close(r.p_value, case["p"])  # type: ignore[arg-type]


@pytest.mark.parametrize("case", GBSTATS_0_8_0)
def test_relative_delta_method_matches_gbstats(case: dict[str, object]) -> None:
    a, b = _pair(case)
    r = welch_test(a, b, alpha=case["alpha"], relative=True)  # type: ignore[arg-type]
    assert r is not None
    assert r.estimate == pytest.approx(case["rel_est"], abs=TOL)
    assert r.ci == pytest.approx(case["rel_ci"], abs=TOL)
    assert r.p_value == pytest.approx(case["rel_p"], abs=TOL)


@pytest.mark.parametrize("case", GBSTATS_0_8_0)
def test_sequential_matches_gbstats(case: dict[str, object]) -> None:
    a, b = _pair(case)
    r = sequential_test(a, b, alpha=case["alpha"])  # type: ignore[arg-type]
    assert r is not None
    assert r.p_value == pytest.approx(case["seq_p"], abs=TOL)
    assert r.ci == pytest.approx(case["seq_ci"], abs=TOL)


@pytest.mark.parametrize("case", GBSTATS_0_8_0)
def test_chance_to_beat_control_matches_gbstats(case: dict[str, object]) -> None:
    a, b = _pair(case)
    ctw = chance_to_beat_control(a, b)
    assert ctw is not None
    assert ctw == pytest.approx(case["ctw"], abs=1e-3)
    assert ctw == pytest.approx(case["ctw"], abs=1e-9)  # same formula, so in fact far closer


@pytest.mark.parametrize(("users", "weights", "expected"), SRM_GOLDEN)
def test_srm_matches_gbstats(users: list[int], weights: list[float], expected: float) -> None:
    assert srm_p_value(users, weights) == pytest.approx(expected, abs=1e-9)


def test_srm_without_users() -> None:
    assert srm_p_value([0, 0], [0.5, 0.5]) == 1.0


def test_sequential_is_more_conservative_than_fixed_horizon() -> None:
    # Always-valid p-values pay for optional stopping: never below the fixed-horizon one here.
    for case in GBSTATS_0_8_0:
        a, b = _pair(case)
        fixed, seq = welch_test(a, b), sequential_test(a, b)
        assert fixed is not None
        assert seq is not None
        assert seq.p_value >= fixed.p_value


def test_sequential_p_value_survives_huge_effects() -> None:
    a, b = ProportionStats.of(10_000_000, 100_000), ProportionStats.of(10_000_000, 900_000)
    r = sequential_test(a, b)
    assert r is not None
    assert r.p_value == 0.0


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((0, 0), (10, 1)), ((10, 0), (10, 3)), ((1, 1), (10, 3)), ((10, 10), (10, 10)), ((10, 3), (1, 0))],
)
def test_undefined_comparisons_return_none(control: tuple[int, int], treatment: tuple[int, int]) -> None:
    a, b = ProportionStats.of(*control), ProportionStats.of(*treatment)
    assert welch_test(a, b) is None
    assert sequential_test(a, b) is None


# --- Power, against statsmodels 0.15.0 NormalIndPower -----------------------------------------------

# NormalIndPower().power(effect_size, nobs1, alpha, ratio)
POWER_GOLDEN = [((0.03, 5000, 0.05, 1.5), 0.3758562844732209)]
# NormalIndPower().solve_power(effect_size=d, nobs1=None, alpha, power, ratio)
NOBS_GOLDEN = [((0.05, 0.05, 0.8, 1.0), 6279.088407460959), ((0.02, 0.05, 0.8, 0.5), 58866.45382027143)]
# NormalIndPower().solve_power(effect_size=None, nobs1, alpha, power, ratio). statsmodels' own root
# finder stops early here (its answer has power 0.800098 instead of 0.8 for the last case), so these
# are compared to 2e-4; the exact property (power at our MDE == target, per statsmodels' formula) is
# checked to 1e-9 below.
MDE_GOLDEN = [
    ((10000, 0.05, 0.8, 1.0), 0.039622750977047795),
    ((2500, 0.1, 0.9, 2.0), 0.07168190652755624),
    ((1000000, 0.05, 0.8, 0.98), 0.003982696497919586),
]


@pytest.mark.parametrize(("args", "expected"), POWER_GOLDEN)
def test_normal_power_matches_statsmodels(args: tuple[float, int, float, float], expected: float) -> None:
    d, n, alpha, ratio = args
    assert normal_power(d, n, alpha, ratio) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("args", "expected"), NOBS_GOLDEN)
def test_required_nobs_matches_statsmodels(args: tuple[float, float, float, float], expected: float) -> None:
    d, alpha, power, ratio = args
    assert required_nobs1(d, alpha, power, ratio) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("args", "expected"), MDE_GOLDEN)
def test_mde_matches_statsmodels(args: tuple[int, float, float, float], expected: float) -> None:
    n, alpha, power, ratio = args
    mde = minimum_detectable_effect(n, alpha, power, ratio)
    assert mde == pytest.approx(expected, rel=2e-4)
    assert normal_power(mde, n, alpha, ratio) == pytest.approx(power, abs=1e-9)


# --- Properties ---------------------------------------------------------------------------------------


@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=10),
)
def test_proportion_stats_are_additive(parts: list[tuple[int, int]]) -> None:
    stats = [ProportionStats.of(n + c, c) for n, c in parts]
    total = stats[0]
    for s in stats[1:]:
        total = total + s
    assert total == ProportionStats.of(sum(n + c for n, c in parts), sum(c for _, c in parts))


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=50), st.integers(1, 49))
def test_sample_mean_stats_split_anywhere(values: list[float], cut: int) -> None:
    def of(xs: list[float]) -> SampleMeanStats:
        return SampleMeanStats(len(xs), sum(xs), sum(x * x for x in xs))

    cut = min(cut, len(values) - 1)
    whole, parts = of(values), of(values[:cut]) + of(values[cut:])
    assert parts.n == whole.n
    assert parts.mean == pytest.approx(whole.mean, abs=1e-6)
    assert parts.variance == pytest.approx(whole.variance, rel=1e-6, abs=1e-6)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_holm_is_bounded_and_monotone(ps: list[float]) -> None:
    adj = holm(ps)
    assert all(p <= a <= 1.0 for p, a in zip(ps, adj, strict=True))
    ordered = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adj[i] <= adj[j] for i, j in itertools.pairwise(ordered))


def test_holm_known_values() -> None:
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
