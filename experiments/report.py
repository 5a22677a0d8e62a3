"""``corp-astro experiments results`` as text: a table that fits the terminal, CSV, and verdicts.

Pure functions of the API's results (``ResultsOut``) and the experiment's dates; nothing here reads the
database or the terminal. Rates are conversion rates, so an absolute lift is a difference of rates in
percentage points (pp) and a relative lift is in percent (%). Counts carry thousands separators.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.metric_schemas import MetricComparison, MetricResult
from experiments.schemas import Comparison, ResultsOut

__all__ = [
    "CSV_HEADER",
    "Schedule",
    "format_chance",
    "format_p",
    "guardrail_verdict",
    "metric_lines",
    "render_csv",
    "render_table",
    "verdict",
]

MIN_WIDTH = 40
_NAME_MIN = 8  # the variant column is never squeezed below this; the numbers are never cut


@dataclass(frozen=True, slots=True)
class Schedule:
    """When the experiment runs: its dates and the day the report is made (UTC)."""

    start_date: dt.date
    end_date: dt.date | None
    today: dt.date

    def line(self) -> str:
        """``2026-11-01 → 2026-11-30, 12 days running`` (or ``ran 30 days``, ``starts in 3 days``)."""
        end = self.end_date.isoformat() if self.end_date else "no end date"
        span = f"{self.start_date.isoformat()} → {end}"
        if self.today < self.start_date:
            return f"{span}, starts in {_count((self.start_date - self.today).days, 'day')}"
        if self.end_date is not None and self.today > self.end_date:
            return f"{span}, ran {_count((self.end_date - self.start_date).days + 1, 'day')}"
        return f"{span}, {_count((self.today - self.start_date).days + 1, 'day')} running"


def _count(n: int, unit: str) -> str:
    return f"{n:,} {unit}" + ("" if n == 1 else "s")


def _decimals(*values: float) -> int:
    """Decimals for numbers shown together: 1 when the largest is 1 or more, 2 from 0.1, else 3."""
    top = max(abs(v) for v in values)
    return 1 if top >= 1 else 2 if top >= 0.1 else 3


def _signed(x: float, places: int) -> str:
    return f"{x:+.{places}f}"


def _interval(ci: tuple[float, float], places: int, sign: str = "") -> str:
    return f"[{ci[0]:{sign}.{places}f}, {ci[1]:{sign}.{places}f}]"


def format_p(p: float) -> str:
    """``0.012``; ``<0.001`` below a thousandth."""
    return "<0.001" if p < 0.001 else f"{p:.2g}" if p < 0.01 else f"{p:.3f}".rstrip("0").rstrip(".")


def format_chance(x: float) -> str:
    """A probability in whole percent, never rounded to a certainty it is not: ``>99 %``, ``<1 %``."""
    pct = round(x * 100)
    if pct >= 100 and x < 1:
        return ">99 %"
    if pct <= 0 < x:
        return "<1 %"
    return f"{pct} %"


def _evidence(c: Comparison | MetricComparison, rate: bool, p: float, p_label: str) -> str:
    """``+1.8 pp [0.4, 3.2], p=0.012 (Holm), 97 % chance to beat``: a rate's lift in percentage points,
    any other metric's relative lift in percent."""
    lift_of, ci_of, unit = (
        (c.absolute_lift, c.absolute_ci, "pp") if rate else (c.relative_lift, c.relative_ci, "%")
    )
    lift = (lift_of or 0.0) * 100
    values = [lift, *(x * 100 for x in ci_of or ())]
    places = _decimals(*values) if rate else 1
    evidence = f"{_signed(lift, places)} {unit}"
    if ci_of is not None:
        evidence += " " + _interval((values[1], values[2]), places)
    evidence += f", p={format_p(p)} ({p_label})"
    if c.chance_to_beat_control is not None:  # already the chance to be below for a "decrease" metric
        evidence += f", {format_chance(c.chance_to_beat_control)} chance to beat"
    return evidence


def verdict(
    c: Comparison | MetricComparison,
    control: str,
    srm_detected: bool,
    metric: str = "conversion",
    *,
    rate: bool = True,
    increase: bool = True,
    correction: str = "Holm",
) -> str:
    """One line on one comparison, e.g. ``b beats control on conversion: +1.8 pp [0.4, 3.2], p=0.012
    (Holm), 97 % chance to beat``; ``b loses to control ...``; ``... no significant difference ...``.

    ``rate``: the metric is a rate (lifts in pp), else lifts are relative (%); ``increase``: higher is
    better (a ``decrease`` metric beats the control by going down)."""
    head = f"{c.variant} vs {control} on {metric}"
    if srm_detected:
        return f"{head}: SRM detected — results not trustworthy"
    lift = c.absolute_lift if rate else c.relative_lift
    if lift is None or c.adjusted_p_value is None:
        return f"{head}: not enough data" + (f" ({c.note})" if c.note else "")
    evidence = _evidence(c, rate, c.adjusted_p_value, correction)
    if not c.significant:
        return f"{head}: no significant difference, {evidence}"
    verb = "beats" if (lift > 0) == increase else "loses to"
    return f"{c.variant} {verb} {control} on {metric}: {evidence}"


def guardrail_verdict(c: MetricComparison, control: str, srm_detected: bool, metric: str, rate: bool) -> str:
    """``b harms guardrail latency against control: ...`` or ``... no harm ...`` (p uncorrected)."""
    head = f"{c.variant} vs {control} on {metric} (guardrail)"
    if srm_detected:
        return f"{head}: SRM detected — results not trustworthy"
    if (c.absolute_lift if rate else c.relative_lift) is None or c.p_value is None:
        return f"{head}: not enough data" + (f" ({c.note})" if c.note else "")
    evidence = _evidence(c, rate, c.p_value, "uncorrected")
    if c.harm:
        return f"{c.variant} harms guardrail {metric} against {control}: {evidence}"
    return f"{head}: no harm, {evidence}"


_RATES = ("binomial", "retention")


def _duplicates_conversion(m: MetricResult, res: ResultsOut) -> bool:
    """The goal-event conversion, listed as the primary metric when none is set: already shown above."""
    same = [(c.variant, c.absolute_lift, c.p_value) for c in m.comparisons]
    return (
        m.role == "primary"
        and m.kind == "binomial"
        and same == [(c.variant, c.absolute_lift, c.p_value) for c in res.comparisons]
    )


def metric_lines(res: ResultsOut, width: int) -> list[str]:
    """Per metric other than the conversion shown above: a heading and one verdict per comparison."""
    label = {"holm": "Holm", "bh": "BH"}.get(res.correction, res.correction)
    lines: list[str] = []
    for m in res.metrics:
        if _duplicates_conversion(m, res):
            continue
        rate = m.kind in _RATES
        unit = "lifts in pp" if rate else "relative lifts in %"
        lines += ["", *_wrapped(f"{m.metric} ({m.role}, {m.kind}, {m.direction} is better; {unit})", width)]
        increase = m.direction == "increase"
        for c in m.comparisons:
            if m.role == "guardrail":
                text = guardrail_verdict(c, res.control, res.srm.detected, m.metric, rate)
            else:
                text = verdict(
                    c, res.control, res.srm.detected, m.metric, rate=rate, increase=increase, correction=label
                )
            lines += _wrapped(text, width, "  ")
        if m.note:
            lines += _wrapped(f"note: {m.note}", width, "  ")
    return lines


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[str] | None:
    """Columns two spaces apart, the first left-aligned, the others right-aligned and whole, no line
    longer than ``width``. A first cell too long for its column goes whole on a line of its own (wrapped
    if need be), its numbers on the next; None if the numbers alone are wider than ``width``."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rest = sum(widths[1:]) + 2 * (len(widths) - 1) + 2
    if rest + min(widths[0], _NAME_MIN) > width:
        return None
    widths[0] = min(widths[0], width - rest)
    out = []
    for r in [header, *rows]:
        first = r[0]
        if len(first) > widths[0]:
            out += _wrapped(first, width, "  ")
            first = ""
        cells = [first.ljust(widths[0])]
        cells += [cell.rjust(w) for cell, w in zip(r[1:], widths[1:], strict=True)]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


def _variant_rows(res: ResultsOut) -> list[list[str]]:
    rows = []
    for v in res.variants:
        rate = "—" if v.conversion_rate is None else f"{v.conversion_rate * 100:.2f}"
        share = f"{v.users / total * 100:.1f}" if (total := sum(x.users for x in res.variants)) else "—"
        name = v.name + (" (control)" if v.name == res.control else "")
        rows.append(
            [name, f"{v.users:,}", f"{v.conversions:,}", rate, share, f"{v.expected_share * 100:.1f}"]
        )
    return rows


def _comparison_cells(c: Comparison) -> list[str]:
    if c.absolute_lift is None:
        return [c.variant, "—", "—", "—", "—", "—", "—"]
    pp = [c.absolute_lift * 100, *(x * 100 for x in c.absolute_ci or ())]
    places = _decimals(*pp)
    rel = None if c.relative_lift is None else c.relative_lift * 100
    rel_ci = None if c.relative_ci is None else (c.relative_ci[0] * 100, c.relative_ci[1] * 100)
    return [
        c.variant,
        _signed(pp[0], places),
        _interval((pp[1], pp[2]), places, "+") if c.absolute_ci else "—",
        "—" if rel is None else _signed(rel, 1),
        "—" if rel_ci is None else _interval(rel_ci, 1, "+"),
        "—" if c.adjusted_p_value is None else format_p(c.adjusted_p_value),
        "—" if c.chance_to_beat_control is None else format_chance(c.chance_to_beat_control).replace(" ", ""),
    ]


def _comparison_blocks(res: ResultsOut, width: int) -> list[str]:
    """One labelled block per comparison: the layout for widths the grid does not fit."""
    out = []
    for c in res.comparisons:
        cells = _comparison_cells(c)
        out += _wrapped(c.variant, width, "  ")
        for label, cell in zip(_COMPARISON_HEADER[1:], cells[1:], strict=True):
            out.append(f"    {label:<12} {cell}")
    return out


_COMPARISON_HEADER = ("variant", "lift pp", "CI pp", "lift %", "CI %", "p (Holm)", "P(beat)")


def _wrapped(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    )


def _power_line(res: ResultsOut) -> str:
    p = res.power
    now = "—" if p.mde_at_current_n is None else f"{p.mde_at_current_n * 100:.1f} %"
    needed = "—" if p.users_needed_for_mde is None else f"{p.users_needed_for_mde:,}"
    line = (
        f"Power {p.power * 100:.0f} %: detectable relative lift now {now}; "
        f"users needed for {p.target_mde * 100:g} %: {needed}"
    )
    return line + (f" ({p.note})" if p.note else "")


def _srm_line(res: ResultsOut) -> str:
    if res.srm.detected:
        return (
            f"SRM: MISMATCH (p = {res.srm.p_value:.2g}): users are not split as configured; "
            "check the assignment pipeline before reading any result"
        )
    return f"SRM: ok (p = {res.srm.p_value:.2g})"


def render_table(res: ResultsOut, schedule: Schedule, width: int = 80) -> str:
    """The results as text no line of which is longer than ``width`` (at least ``MIN_WIDTH``)."""
    width = max(width, MIN_WIDTH)
    confidence = f"{(1 - res.alpha) * 100:g} %"
    lines = _wrapped(f"{res.experiment} ({res.status}, phase {res.phase}), control: {res.control}", width)
    lines += _wrapped(schedule.line(), width)
    lines += ["", "Variants (rate and shares in %)"]
    header = ["variant", "users", "conversions", "rate", "share", "expected"]
    lines += _grid(header, _variant_rows(res), width) or []
    lines += ["", *_wrapped(f"Against {res.control}: lift in pp and %, {confidence} CI, Holm p", width)]
    grid = _grid(_COMPARISON_HEADER, [_comparison_cells(c) for c in res.comparisons], width)
    lines += grid if grid is not None else _comparison_blocks(res, width)
    lines.append("")
    for c in res.comparisons:
        lines += _wrapped(verdict(c, res.control, res.srm.detected), width)
    lines += metric_lines(res, width)
    lines += ["", *_wrapped(_srm_line(res), width), *_wrapped(_power_line(res), width)]
    return "\n".join(lines) + "\n"


CSV_HEADER = (
    "experiment",
    "variant",
    "is_control",
    "users",
    "conversions",
    "conversion_rate",
    "expected_share",
    "absolute_lift",
    "absolute_ci_low",
    "absolute_ci_high",
    "relative_lift",
    "relative_ci_low",
    "relative_ci_high",
    "p_value",
    "adjusted_p_value",
    "significant",
    "chance_to_beat_control",
    "sequential_p_value",
    "srm_p_value",
    "verdict",
)


def _num(x: float | int | None) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else repr(x)


def render_csv(res: ResultsOut) -> str:
    """One row per variant (the API's numbers, unscaled), its comparison with the control beside it."""
    by_variant = {c.variant: c for c in res.comparisons}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for v in res.variants:
        c = by_variant.get(v.name)
        row = [res.experiment, v.name, str(v.name == res.control).lower(), str(v.users), str(v.conversions)]
        row += [_num(v.conversion_rate), _num(v.expected_share)]
        if c is None:
            row += [""] * 11
        else:
            abs_ci = c.absolute_ci or (None, None)
            rel_ci = c.relative_ci or (None, None)
            row += [_num(c.absolute_lift), _num(abs_ci[0]), _num(abs_ci[1]), _num(c.relative_lift)]
            row += [_num(rel_ci[0]), _num(rel_ci[1]), _num(c.p_value), _num(c.adjusted_p_value)]
            row += [str(c.significant).lower(), _num(c.chance_to_beat_control), _num(c.sequential_p_value)]
        row.append(_num(res.srm.p_value))
        row.append("" if c is None else verdict(c, res.control, res.srm.detected))
        writer.writerow(row)
    return buf.getvalue()
