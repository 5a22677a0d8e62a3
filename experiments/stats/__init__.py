"""Pure experiment statistics on additive sufficient statistics (no I/O, no database).

Each function reproduces a reference engine: gbstats 0.8.0 for the statistics classes, the t-tests,
the sequential test, the Bayesian chance to win and SRM; statsmodels for power (``NormalIndPower``) and
Benjamini-Hochberg (``multipletests(method="fdr_bh")``). The tests pin their values.
"""

from __future__ import annotations

from experiments.stats.bayesian import chance_to_beat_control
from experiments.stats.frequentist import TestResult, sequential_test, welch_test
from experiments.stats.multiple import CORRECTIONS, Correction, adjust, benjamini_hochberg, holm
from experiments.stats.power import minimum_detectable_effect, normal_power, required_nobs1
from experiments.stats.srm import SRM_THRESHOLD, srm_p_value
from experiments.stats.statistics import (
    ProportionStats,
    RatioStats,
    RegressionAdjustedStats,
    SampleMeanStats,
    Statistic,
    adjust_pair,
)

__all__ = [
    "CORRECTIONS",
    "SRM_THRESHOLD",
    "Correction",
    "ProportionStats",
    "RatioStats",
    "RegressionAdjustedStats",
    "SampleMeanStats",
    "Statistic",
    "TestResult",
    "adjust",
    "adjust_pair",
    "benjamini_hochberg",
    "chance_to_beat_control",
    "holm",
    "minimum_detectable_effect",
    "normal_power",
    "required_nobs1",
    "sequential_test",
    "srm_p_value",
    "welch_test",
]
