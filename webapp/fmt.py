"""Numbers for people: thousands separators, lifts in percentage points, p-values and chances.

Pure functions returning text. A minus sign is the typographic one (U+2212), so that a lift reads
``\u22121.2 pp`` (a real minus) rather than a hyphen.
"""

from __future__ import annotations

import math

from experiments import format_chance, format_p

__all__ = ["chance", "count", "decimal", "interval", "p_value", "percent", "pp", "signed"]

MINUS = "\u2212"
DASH = "\u2014"


def _minus(text: str) -> str:
    return text.replace("-", MINUS)


def count(n: int | None) -> str:
    """``1,234,567``; a dash for None."""
    return DASH if n is None else f"{n:,}"


def places_for(*values: float) -> int:
    """Decimals for numbers shown together: 1 when the largest is 1 or more, 2 from 0.1, else 3."""
    top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return 1 if top >= 1 else 2 if top >= 0.1 else 3


def decimal(x: float | None, places: int = 2) -> str:
    """A plain number with thousands separators; a dash for None or a non-finite value."""
    if x is None or not math.isfinite(x):
        return DASH
    return _minus(f"{x:,.{places}f}")


def signed(x: float | None, places: int = 1) -> str:
    """``+1.8`` or ``\u22120.4`` (a real minus)."""
    if x is None or not math.isfinite(x):
        return DASH
    return _minus(f"{x:+,.{places}f}")


def percent(share: float | None, places: int = 1) -> str:
    """A share as a percentage: ``0.1234`` → ``12.3 %``."""
    return DASH if share is None or not math.isfinite(share) else f"{decimal(share * 100, places)} %"


def pp(diff: float | None, places: int | None = None) -> str:
    """A difference of rates in percentage points: ``0.018`` → ``+1.8 pp``."""
    if diff is None or not math.isfinite(diff):
        return DASH
    value = diff * 100
    return f"{signed(value, places if places is not None else places_for(value))} pp"


def interval(ci: tuple[float, float] | None, scale: float = 100.0, places: int | None = None) -> str:
    """``[+0.4, +3.2]`` for a CI scaled (by 100: pp or %), each end signed."""
    if ci is None:
        return DASH
    lo, hi = ci[0] * scale, ci[1] * scale
    n = places if places is not None else places_for(lo, hi)
    return f"[{signed(lo, n)}, {signed(hi, n)}]"


def p_value(p: float | None) -> str:
    """``0.012``; ``<0.001`` below a thousandth (the results command's wording)."""
    return DASH if p is None or not math.isfinite(p) else format_p(p)


def chance(x: float | None) -> str:
    """A probability in whole percent, never rounded to a certainty it is not: ``>99 %``, ``<1 %``."""
    return DASH if x is None or not math.isfinite(x) else format_chance(x)
