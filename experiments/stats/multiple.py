"""Multiple-comparison corrections across an experiment's comparisons (variants x metrics).

Both return adjusted p-values in the input order, each capped at 1; rejecting where adjusted < alpha
controls the family-wise error rate (Holm) or the false discovery rate (Benjamini-Hochberg) at alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = ["CORRECTIONS", "Correction", "adjust", "benjamini_hochberg", "holm"]

Correction = Literal["holm", "bh"]
CORRECTIONS: tuple[Correction, ...] = ("holm", "bh")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest (0-based) is multiplied by ``m - i``; a running maximum keeps the
    adjusted values monotone, and they are capped at 1.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, as statsmodels' ``multipletests(method="fdr_bh")``.

    Sorted ascending, p(k) becomes min over j >= k of m·p(j)/j (1-based ranks), capped at 1.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, m * p_values[i] / (rank + 1))
        adjusted[i] = running
    return adjusted


def adjust(p_values: Sequence[float], method: Correction) -> list[float]:
    """The correction an experiment chose."""
    return benjamini_hochberg(p_values) if method == "bh" else holm(p_values)
