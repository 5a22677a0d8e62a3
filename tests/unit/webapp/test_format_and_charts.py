"""The web app's pure parts: number formatting, the SVG charts, the verdict chip."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from experiments.schemas import Comparison, PowerOut, ResultsOut, SrmOut, VariantResult
from webapp import charts, fmt, views


def test_formatting_for_people() -> None:
    assert fmt.count(1234567) == "1,234,567"
    assert fmt.pp(0.0183) == "+1.8 pp"
    assert fmt.pp(0.0083) == "+0.83 pp"
    assert fmt.pp(-0.012) == "\u22121.2 pp"
    assert fmt.interval((0.004, 0.032)) == "[+0.4, +3.2]"
    assert fmt.percent(0.1234) == "12.3 %"
    assert fmt.p_value(0.0004) == "<0.001"
    assert fmt.p_value(0.0123) == "0.012"
    assert fmt.p_value(0.004567) == "0.0046"
    assert fmt.chance(0.9996) == ">99 %"
    assert fmt.chance(0.003) == "<1 %"
    assert fmt.pp(None) == fmt.pp(float("nan")) == "\u2014"


@pytest.mark.parametrize(("low", "high"), [(-1.3, 4.2), (0.0, 0.0), (0.001, 0.0042), (-50.0, -2.0)])
def test_ticks_cover_the_range(low: float, high: float) -> None:
    ticks = charts.nice_ticks(low, high)
    assert ticks[0] <= low
    assert ticks[-1] >= high
    assert ticks == sorted(ticks)


def test_svgs_are_well_formed_and_escape_text() -> None:
    forest = charts.forest_plot(
        [charts.Interval("<b> vs control", 1.0, 0.2, 1.8, "good"), charts.Interval("c", -0.5, -1.5, 0.5)],
        "pp",
        "Lift & CI",
    )
    line = charts.line_chart(
        ["11-01", "11-02"], [charts.Series("DAU", [3.0, None], [(2.0, 4.0), None])], "Active users"
    )
    bars = charts.stacked_bars(["h0", "h1"], [("a", [1.0, 2.0]), ("b", [0.0, 5.0])], "Events")
    for svg in (forest, line, bars):
        root = ET.fromstring(svg)  # noqa: S314 (our own output)
        assert root.get("role") == "img"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
    assert "&lt;b&gt; vs control" in forest
    assert forest.count("<circle") == 2
    assert bars.count("<rect") == 3 + 2  # three non-zero segments, two legend swatches


def _results(srm: bool, p_a: float | None, lift: float) -> ResultsOut:
    comparison = Comparison(
        "a", lift, (lift - 0.01, lift + 0.01), lift * 10, None, p_a, p_a, p_a is not None and p_a < 0.05,
        0.9, 0.5,
    )  # fmt: skip
    return ResultsOut(
        experiment="x", status="active", control="control", alpha=0.05, phase=1,
        variants=[VariantResult("control", 100, 10, 0.1, 0.5), VariantResult("a", 100, 12, 0.12, 0.5)],
        comparisons=[comparison], srm=SrmOut(0.0001 if srm else 0.5, srm),
        power=PowerOut(None, None, None, 0.05, 0.8),
    )  # fmt: skip


def test_verdict_chip() -> None:
    assert views.chip_of(_results(True, 0.001, 0.02)).kind == "srm"
    assert views.chip_of(_results(False, 0.001, 0.02)).kind == "winning"
    assert views.chip_of(_results(False, 0.001, -0.02)).kind == "losing"
    assert views.chip_of(_results(False, 0.3, 0.02)).kind == "inconclusive"
    assert views.chip_of(_results(False, None, 0.02)).kind == "no-data"


def test_cumulative_chart_runs_the_daily_sums() -> None:
    import datetime as dt
    import uuid
    from types import SimpleNamespace

    a, b = uuid.uuid4(), uuid.uuid4()
    exp = SimpleNamespace(
        variants=[SimpleNamespace(variant_id=a, name="control"), SimpleNamespace(variant_id=b, name="b")]
    )
    day = dt.date(2026, 11, 1)
    daily = [
        {"variant_id": a, "day": day, "assigned": 100, "converted": 10},
        {"variant_id": a, "day": day + dt.timedelta(days=1), "assigned": 100, "converted": 30},
        {"variant_id": b, "day": day + dt.timedelta(days=1), "assigned": 50, "converted": 5},
    ]
    svg = str(views.cumulative_chart(exp, daily))  # type: ignore[arg-type]
    root = ET.fromstring(svg)  # noqa: S314 (our own output)
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    # control: 10 % then 20 % (40 / 200), two points; b: no units on day one, so one point.
    assert [len(line.get("points", "").split()) for line in lines] == [2, 1]
    assert views.cumulative_chart(exp, []) == ""  # type: ignore[arg-type]


def test_experiment_page_flags_a_harmed_guardrail_and_uses_the_clis_verdicts() -> None:
    import datetime as dt
    import uuid

    from experiments.metric_schemas import MetricComparison, MetricResult, MetricVariant
    from experiments.schemas import ExperimentOut, VariantOut

    res = _results(False, 0.001, 0.02)
    errors = MetricComparison(
        "a", 0.4, (0.1, 0.7), 0.2, (0.05, 0.35), 0.004, 0.004, True, 0.01, 0.02, cuped=False, harm=True
    )
    res.metrics = [
        MetricResult("errors", "guardrail", "count", "decrease",
                     [MetricVariant("control", 100, 2.0, 200.0), MetricVariant("a", 100, 2.4, 240.0)], [errors]),
    ]  # fmt: skip
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    variants = [VariantOut(uuid.uuid4(), n, None, 50.0, 0.5, n == "control") for n in ("control", "a")]
    exp = ExperimentOut(
        uuid.uuid4(),
        "x",
        None,
        "active",
        dt.date(2026, 11, 1),
        None,
        "control",
        1,
        None,
        True,
        variants,
        now,
        now,
    )
    page = views.experiment_page(exp, res, dt.date(2026, 11, 30))
    assert page["guardrails_harmed"] == [("errors", "a")]
    (metric,) = page["metrics"]
    assert metric.comparisons[0]["tone"] == "bad"  # up is worse for a "decrease" metric
    assert metric.comparisons[0]["chance"] == "1 %"  # the API's chance to be below, shown as it is
    assert metric.verdicts == [
        "a harms guardrail errors against control: +20.0 % [5.0, 35.0], p=0.004 (uncorrected), 1 % chance to beat"
    ]
    assert page["row"].days == "30 days"
    assert "<svg" in metric.forest
