"""Golden values for experiments.stats from the reference engines, written to tests/fixtures/.

Run it in a throwaway virtualenv, never the project's (gbstats pins numpy<2 and pandas<2):

    python3 -m venv /tmp/gbstats-venv
    /tmp/gbstats-venv/bin/pip install gbstats==0.8.0 statsmodels==0.15.0
    /tmp/gbstats-venv/bin/python tools/gbstats_golden.py

The data are seeded numpy draws reduced to the sufficient statistics the SQL computes (n, sums, sums of
squares and cross products); gbstats sees only those sums, exactly as experiments.stats does.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from statsmodels.stats.multitest import multipletests

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gbstats_golden.json"


def _mean_stats(x: np.ndarray) -> dict[str, float]:
    return {"n": len(x), "sum": float(x.sum()), "sum_squares": float((x * x).sum())}


def _gb_mean(s: dict[str, float], binary: bool) -> Any:
    if binary:
        return ProportionStatistic(n=int(s["n"]), sum=s["sum"])
    return SampleMeanStatistic(n=int(s["n"]), sum=s["sum"], sum_squares=s["sum_squares"])


def _outputs(make: Any, alpha: float) -> dict[str, Any]:
    """Every output, each test on fresh statistic objects (gbstats mutates theta in place)."""
    out: dict[str, Any] = {}
    for kind in ("absolute", "relative"):
        r = TwoSidedTTest(*make(), FrequentistConfig(alpha=alpha, difference_type=kind)).compute_result()
        out[kind] = {"estimate": r.expected, "ci": list(r.ci), "p_value": r.p_value}
        s = SequentialTwoSidedTTest(
            *make(), SequentialConfig(alpha=alpha, difference_type=kind)
        ).compute_result()
        out["sequential_" + kind] = {"estimate": s.expected, "ci": list(s.ci), "p_value": s.p_value}
    b = EffectBayesianABTest(*make(), EffectBayesianConfig()).compute_result()
    out["chance_to_win"] = b.chance_to_win
    return out


def _mean_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases = []
    for n_a, n_b, mu_a, mu_b, sd, alpha in [
        (1000, 1000, 10.0, 10.4, 5.0, 0.05),
        (5000, 4800, 3.2, 3.1, 8.0, 0.05),
        (200, 250, 50.0, 58.0, 30.0, 0.1),
        (20000, 20000, 1.0, 1.02, 2.0, 0.01),
    ]:
        a = np.maximum(rng.normal(mu_a, sd, n_a), 0.0)  # revenue-like: non-negative, many at 0
        b = np.maximum(rng.normal(mu_b, sd, n_b), 0.0)
        sa, sb = _mean_stats(a), _mean_stats(b)
        out = _outputs(lambda sa=sa, sb=sb: (_gb_mean(sa, False), _gb_mean(sb, False)), alpha)
        cases.append({"alpha": alpha, "control": sa, "treatment": sb, **out})
    return cases


def _ratio_stats(m: np.ndarray, d: np.ndarray) -> dict[str, Any]:
    return {
        "n": len(m),
        "m": _mean_stats(m),
        "d": _mean_stats(d),
        "m_d_sum_of_products": float((m * d).sum()),
    }


def _gb_ratio(s: dict[str, Any]) -> RatioStatistic:
    return RatioStatistic(
        n=s["n"],
        m_statistic=_gb_mean(s["m"], False),
        d_statistic=_gb_mean(s["d"], False),
        m_d_sum_of_products=s["m_d_sum_of_products"],
    )


def _ratio_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases = []
    for n_a, n_b, lift, alpha in [
        (3000, 3000, 1.05, 0.05),
        (800, 900, 0.97, 0.05),
        (10000, 10100, 1.01, 0.1),
    ]:
        arms = []
        for n, k in ((n_a, 1.0), (n_b, lift)):
            sessions = rng.poisson(3.0, n).astype(float) + 1.0
            revenue = rng.gamma(2.0, 2.0 * k, n) * sessions
            arms.append(_ratio_stats(revenue, sessions))
        sa, sb = arms
        out = _outputs(lambda sa=sa, sb=sb: (_gb_ratio(sa), _gb_ratio(sb)), alpha)
        cases.append({"alpha": alpha, "control": sa, "treatment": sb, **out})
    return cases


def _cuped_stats(post: np.ndarray, pre: np.ndarray) -> dict[str, Any]:
    return {
        "n": len(post),
        "post": _mean_stats(post),
        "pre": _mean_stats(pre),
        "post_pre_sum_of_products": float((post * pre).sum()),
    }


def _gb_cuped(s: dict[str, Any], binary: bool) -> RegressionAdjustedStatistic:
    return RegressionAdjustedStatistic(
        n=s["n"],
        post_statistic=_gb_mean(s["post"], binary),
        pre_statistic=_gb_mean(s["pre"], binary),
        post_pre_sum_of_products=s["post_pre_sum_of_products"],
        theta=0,
    )


def _cuped_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases = []
    for n_a, n_b, effect, rho, binary, alpha in [
        (2000, 2000, 0.3, 0.7, False, 0.05),
        (5000, 5100, 0.05, 0.85, False, 0.05),
        (1500, 1400, -0.2, 0.4, False, 0.1),
        (8000, 8000, 0.02, 0.5, True, 0.05),
    ]:
        arms = []
        for n, e in ((n_a, 0.0), (n_b, effect)):
            z1, z2 = rng.normal(size=n), rng.normal(size=n)
            pre = 5.0 + 2.0 * z1
            post = 5.0 + e + 2.0 * (rho * z1 + np.sqrt(1 - rho * rho) * z2)
            if binary:
                pre, post = (pre > 5.5).astype(float), (post > 5.5 - e * 10).astype(float)
            arms.append(_cuped_stats(post, pre))
        sa, sb = arms
        out = _outputs(
            lambda sa=sa, sb=sb, binary=binary: (_gb_cuped(sa, binary), _gb_cuped(sb, binary)), alpha
        )
        a, b = _gb_cuped(sa, binary), _gb_cuped(sb, binary)
        TwoSidedTTest(a, b, FrequentistConfig(alpha=alpha))
        cases.append(
            {"alpha": alpha, "binary": binary, "control": sa, "treatment": sb, "theta": a.theta, **out}
        )
    return cases


def _correction_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    lists = [
        [0.01, 0.04, 0.03, 0.2, 0.5],
        [0.001, 0.001, 0.9, 0.049, 0.02, 0.3, 0.7],
        [0.5],
        [1.0, 0.0, 0.05, 0.05],
        [float(p) for p in rng.uniform(0, 0.2, 12)],
        [float(p) for p in rng.beta(0.3, 2.0, 25)],
    ]
    return [
        {
            "p_values": ps,
            "bh": [float(x) for x in multipletests(ps, method="fdr_bh")[1]],
            "holm": [float(x) for x in multipletests(ps, method="holm")[1]],
        }
        for ps in lists
    ]


def main() -> int:
    rng = np.random.default_rng(20261130)
    golden = {
        "engines": {
            "gbstats": version("gbstats"),
            "statsmodels": version("statsmodels"),
            "numpy": version("numpy"),
            "scipy": version("scipy"),
            "python": sys.version.split()[0],
        },
        "configs": "TwoSidedTTest/SequentialTwoSidedTTest(FrequentistConfig/SequentialConfig(alpha, difference_type)), "
        "tuning 5000; EffectBayesianABTest(EffectBayesianConfig()) (relative, flat prior)",
        "sample_mean": _mean_cases(rng),
        "ratio": _ratio_cases(rng),
        "cuped": _cuped_cases(rng),
        "corrections": _correction_cases(rng),
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
