"""The results CLI's text: 80 columns whatever the names, pp and %, thousands separators, verdicts, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from experiments.metric_schemas import MetricComparison, MetricResult, MetricVariant
from experiments.report import CSV_HEADER, Schedule, guardrail_verdict, render_csv, render_table, verdict
from experiments.schemas import Comparison, PowerOut, ResultsOut, SrmOut, VariantResult

LONG = "urgency-banner-with-countdown-and-free-shipping-threshold-variant-number-two-long"


def comparison(variant: str = "b", **kw: object) -> Comparison:
    values: dict[str, object] = {
        "variant": variant,
        "absolute_lift": 0.018,
        "absolute_ci": (0.004, 0.032),
        "relative_lift": 0.18,
        "relative_ci": (0.04, 0.32),
        "p_value": 0.006,
        "adjusted_p_value": 0.012,
        "significant": True,
        "chance_to_beat_control": 0.97,
        "sequential_p_value": 0.2,
    }
    values.update(kw)
    return Comparison(**values)  # type: ignore[arg-type]


def results(comparisons: list[Comparison], srm: bool = False, name: str = "checkout") -> ResultsOut:
    variants = [VariantResult("control", 123_456, 12_345, 0.1, 0.5)]
    variants += [VariantResult(c.variant, 1_234_567, 123_456, 0.118, 0.5) for c in comparisons]
    return ResultsOut(
        experiment=name,
        status="active",
        control="control",
        alpha=0.05,
        phase=1,
        variants=variants,
        comparisons=comparisons,
        srm=SrmOut(p_value=0.00001 if srm else 0.84, detected=srm),
        power=PowerOut(0.031, 1_234_567, 0.0031, 0.05, 0.8),
    )


def squash(text: str) -> str:
    """``text`` without whitespace, to find a phrase however it was wrapped."""
    return "".join(text.split())


SCHEDULE = Schedule(dt.date(2026, 11, 1), None, dt.date(2026, 11, 30))


def test_verdicts() -> None:
    assert verdict(comparison(), "control", False) == (
        "b beats control on conversion: +1.8 pp [0.4, 3.2], p=0.012 (Holm), 97 % chance to beat"
    )
    worse = comparison(absolute_lift=-0.018, absolute_ci=(-0.032, -0.004), chance_to_beat_control=0.03)
    assert verdict(worse, "control", False) == (
        "b loses to control on conversion: -1.8 pp [-3.2, -0.4], p=0.012 (Holm), 3 % chance to beat"
    )
    flat = comparison(
        absolute_lift=0.003, absolute_ci=(-0.009, 0.015), adjusted_p_value=0.62, significant=False
    )
    assert verdict(flat, "control", False).startswith(
        "b vs control on conversion: no significant difference, +0.3 pp"
    )
    assert verdict(comparison(), "control", True) == (
        "b vs control on conversion: SRM detected — results not trustworthy"
    )
    empty = comparison(absolute_lift=None, absolute_ci=None, adjusted_p_value=None, note="Not enough data.")
    assert (
        verdict(empty, "control", False) == "b vs control on conversion: not enough data (Not enough data.)"
    )


def test_small_p_and_certainty_are_not_rounded_away() -> None:
    line = verdict(comparison(adjusted_p_value=0.00002, chance_to_beat_control=0.99996), "control", False)
    assert "p=<0.001 (Holm), >99 % chance to beat" in line
    small = comparison(absolute_lift=0.0004, absolute_ci=(0.0001, 0.0007), adjusted_p_value=0.0042)
    assert "+0.040 pp [0.010, 0.070], p=0.0042" in verdict(small, "control", False)


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("names", [["b"], [LONG], [LONG, LONG + "-3", "c"]])
def test_table_fits_the_width(width: int, names: list[str]) -> None:
    res = results([comparison(n) for n in names], name="checkout-" + LONG)
    text = render_table(res, SCHEDULE, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    # Numbers are whole: pp and % lifts, thousands separators, the dates and days running.
    for expected in (
        "1,234,567",
        "123,456",
        "+1.8",
        "[+0.4, +3.2]",
        "+18.0",
        "[+4.0, +32.0]",
        "0.012",
        "97%",
    ):
        assert expected in text, (expected, text)
    assert "2026-11-01 → no end date, 30 days running" in text
    # Names are whole (a long one on a line of its own, wrapped), and there is one verdict per comparison.
    assert "…" not in text
    squashed = squash(text)
    for n in names:
        assert squash(n) in squashed
        expected = f"{n} beats control on conversion: +1.8 pp [0.4, 3.2], p=0.012 (Holm), 97 % chance to beat"
        assert squash(expected) in squashed


def test_table_falls_back_to_blocks_when_numbers_are_wide() -> None:
    wide = comparison(relative_lift=12.3456, relative_ci=(-123.456, 1234.5678))
    text = render_table(results([wide]), SCHEDULE, 40)
    assert max(len(line) for line in text.splitlines()) <= 40, text
    assert "[-12345.6, +123456.8]" in text


def test_srm_mismatch_is_said_on_every_comparison() -> None:
    text = render_table(results([comparison("b"), comparison("c")], srm=True), SCHEDULE)
    assert text.count("SRM detected — results not trustworthy") == 2
    assert "SRM: MISMATCH" in text
    assert "beats" not in text


def test_schedule_lines() -> None:
    start, end = dt.date(2026, 11, 1), dt.date(2026, 11, 30)
    assert Schedule(start, end, dt.date(2026, 11, 1)).line() == "2026-11-01 → 2026-11-30, 1 day running"
    assert Schedule(start, end, dt.date(2026, 12, 15)).line() == "2026-11-01 → 2026-11-30, ran 30 days"
    assert Schedule(start, end, dt.date(2026, 10, 29)).line() == "2026-11-01 → 2026-11-30, starts in 3 days"


def test_csv_header_and_rows() -> None:
    res = results([comparison("b"), comparison("c", absolute_lift=None, absolute_ci=None)])
    rows = list(csv.reader(io.StringIO(render_csv(res))))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 4
    assert all(len(r) == len(CSV_HEADER) for r in rows)
    control, b, c = (dict(zip(CSV_HEADER, r, strict=True)) for r in rows[1:])
    assert (control["variant"], control["is_control"], control["users"], control["absolute_lift"]) == (
        "control", "true", "123456", ""
    )  # fmt: skip
    assert control["verdict"] == ""
    assert (b["absolute_lift"], b["absolute_ci_low"], b["adjusted_p_value"], b["significant"]) == (
        "0.018", "0.004", "0.012", "true"
    )  # fmt: skip
    assert b["verdict"].startswith("b beats control on conversion: +1.8 pp")
    assert c["absolute_lift"] == ""
    assert c["verdict"].startswith("c vs control on conversion: not enough data")


def metric(
    name: str, role: str, kind: str, direction: str, comparisons: list[MetricComparison]
) -> MetricResult:
    variants = [MetricVariant("control", 1000, 1.0, 1000.0), MetricVariant("b", 1000, 1.1, 1100.0)]
    return MetricResult(name, role, kind, direction, variants, comparisons)  # type: ignore[arg-type]


def metric_comparison(**kw: object) -> MetricComparison:
    values = {f: getattr(comparison(), f) for f in Comparison.__struct_fields__ if f != "note"}
    values["cuped"] = True
    values.update(kw)
    return MetricComparison(**values)  # type: ignore[arg-type]


def test_metrics_get_a_verdict_each_in_their_units_and_direction() -> None:
    res = results([comparison(LONG)])
    conversion = metric_comparison(variant=LONG)
    res.metrics = [
        metric("conversion", "primary", "binomial", "increase", [conversion]),  # the one shown above
        metric("revenue", "secondary", "sum", "increase", [metric_comparison(variant=LONG)]),
        metric(
            "latency_ms",
            "secondary",
            "mean",
            "decrease",
            [
                metric_comparison(
                    variant=LONG, relative_lift=-0.12, relative_ci=(-0.2, -0.04), chance_to_beat_control=0.98
                )
            ],
        ),
        metric(
            "refunds",
            "guardrail",
            "binomial",
            "decrease",
            [metric_comparison(variant=LONG, p_value=0.004, harm=True)],
        ),
        metric(
            "errors",
            "guardrail",
            "count",
            "decrease",
            [metric_comparison(variant=LONG, p_value=0.4, harm=False, significant=False)],
        ),
    ]
    res.correction = "bh"
    text = render_table(res, SCHEDULE, 80)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    squashed = squash(text)
    assert squashed.count(squash(f"{LONG} beats control on conversion")) == 1  # not repeated for metrics
    for line in (
        f"{LONG} beats control on revenue: +18.0 % [4.0, 32.0], p=0.012 (BH), 97 % chance to beat",
        f"{LONG} beats control on latency_ms: -12.0 % [-20.0, -4.0], p=0.012 (BH), 98 % chance to beat",
        f"{LONG} harms guardrail refunds against control: +1.8 pp [0.4, 3.2], p=0.004 (uncorrected)",
        f"{LONG} vs control on errors (guardrail): no harm, +18.0 % [4.0, 32.0], p=0.4 (uncorrected)",
        "revenue (secondary, sum, increase is better; relative lifts in %)",
    ):
        assert squash(line) in squashed, (line, text)


def test_a_metric_against_its_direction_loses() -> None:
    worse = metric_comparison(relative_lift=0.12, relative_ci=(0.04, 0.2))
    line = verdict(worse, "control", False, "latency_ms", rate=False, increase=False, correction="Holm")
    assert line.startswith("b loses to control on latency_ms: +12.0 % [4.0, 20.0], p=0.012 (Holm)")
    assert guardrail_verdict(worse, "control", True, "x", rate=False) == (
        "b vs control on x (guardrail): SRM detected — results not trustworthy"
    )
