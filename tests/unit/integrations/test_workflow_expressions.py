"""The condition language: what it evaluates, what it refuses, and (property tests) that no input
reaches a Python builtin, an attribute or anything outside the execution's JSON data."""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.workflows import expressions, templating, timing
from integrations.workflows.expressions import ExpressionError, evaluate, parse

CONTEXT: dict[str, Any] = {
    "trigger": {"properties": {"plan": "pro", "amount": "12.5", "tags": ["a", "b"]}, "user_id": "u1"},
    "steps": {"wait": {"output": {"received": False}}, "n": {"output": {"count": 3}}},
    "variables": {"tier": "gold", "limit": 10},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('trigger.properties.plan == "pro"', True),
        ("trigger.properties.plan == 'pro'", True),
        ("not steps.wait.output.received", True),
        ("steps.n.output.count >= 3 and variables.limit < 11", True),
        ("trigger.properties.amount > 12", True),  # a property stored as text compares as a number
        ("trigger.properties.missing == null", True),
        ('"a" in trigger.properties.tags', True),
        ('variables.tier in ["gold", "silver"]', True),
        ("(false or true) and not (1 == 2)", True),
        ("trigger.properties.tags.1 == 'b'", True),
        ("1 < 'a'", False),  # mixed kinds do not order
        ("true == 1", False),
        ("trigger.properties.plan != 'pro' or variables.limit == 10.0", True),
    ],
)
def test_evaluates(text: str, expected: Any) -> None:
    assert evaluate(parse(text), CONTEXT) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "__import__('os')",
        "os.system",
        "trigger.x ==",
        "(trigger.x",
        "trigger.x == == 1",
        "lambda: 1",
        "trigger.x + 1",
        "[trigger.x]",
        "open('/etc/passwd')",
        "a" * 2000,
        "(" * 100 + "true" + ")" * 100,
        "not " * 100 + "true",
    ],
)
def test_refuses(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


_NAMES = [
    *sorted(n for n in dir(builtins) if not n.startswith("_")),
    "__class__",
    "__dict__",
    "__globals__",
    "__builtins__",
    "__subclasses__",
    "mro",
    "__init__",
    "get",
    "keys",
    "items",
    "copy",
    "pop",
    "clear",
    "update",
    "format",
    "join",
    "upper",
]
_ATOMS = st.one_of(
    st.sampled_from(_NAMES),
    st.sampled_from(["trigger", "steps", "variables"]).flatmap(
        lambda root: st.lists(st.sampled_from([*_NAMES, "properties", "plan", "0", "1"]), max_size=4).map(
            lambda parts: ".".join([root, *parts])
        )
    ),
    st.sampled_from(
        ["==", "!=", "<", ">=", "and", "or", "not", "in", "(", ")", "[", "]", ",", ".", "'", '"']
    ),
    st.text(max_size=8),
    st.integers().map(str),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_ATOMS, max_size=12).map(" ".join))
def test_no_input_reaches_python(text: str) -> None:
    """Whatever parses evaluates to JSON data only (None, bool, number, str, list, dict) taken from the
    context, and no name outside the three roots parses at all."""
    try:
        tree = parse(text)
    except ExpressionError:
        return
    value = evaluate(tree, CONTEXT)
    assert value is None or isinstance(value, (bool, int, float, str, list, dict))
    for node in _walk(tree):
        if node[0] == "name":
            assert node[1][0] in expressions.ROOTS


def _walk(node: Any) -> Any:
    yield node
    for child in node[1:]:
        if (
            isinstance(child, tuple)
            and child
            and isinstance(child[0], str)
            and child[0] in {"lit", "name", "not", "and", "or", "cmp"}
        ):
            yield from _walk(child)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5))
def test_attribute_names_resolve_to_nothing(parts: list[str]) -> None:
    """A path made of attribute or builtin names finds only keys of the JSON data: here, nothing."""
    for root in ("trigger", "steps", "variables"):
        assert evaluate(parse(".".join([root, *parts])), CONTEXT) is None


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_templates_never_evaluate(text: str) -> None:
    rendered = templating.render({"x": text, "y": [text]}, CONTEXT)
    assert isinstance(rendered["x"], (str, type(None), bool, int, float, list, dict))


def test_templates() -> None:
    assert templating.render("{{ trigger.user_id }}", CONTEXT) == "u1"
    assert templating.render("{{ variables.limit }}", CONTEXT) == 10
    assert templating.render("Hi {{variables.tier}} ({{ variables.limit }})", CONTEXT) == "Hi gold (10)"
    assert templating.render("{{ trigger.__class__ }}", CONTEXT) is None
    assert templating.unknown_roots({"a": "{{ os.environ }}", "b": ["{{ trigger.x }}"]}) == ["os.environ"]


def test_durations_and_instants() -> None:
    assert timing.parse_duration("1d") == dt.timedelta(days=1)
    assert timing.parse_duration("90m") == dt.timedelta(minutes=90)
    for bad in ("1y", "", "d", "-1d", "400d"):
        with pytest.raises(ValueError, match=r"duration|longer"):
            timing.parse_duration(bad)
    assert timing.parse_instant("2026-12-01T09:00") == dt.datetime(2026, 12, 1, 9)
    assert timing.parse_instant("2026-12-01T10:00+01:00") == dt.datetime(2026, 12, 1, 9)
    assert timing.parse_instant("2026-12-01T09:00Z") == dt.datetime(2026, 12, 1, 9)


def test_cron_in_a_dst_zone_fires_once_per_local_day() -> None:
    """09:30 in Europe/Berlin across the spring and autumn changes: one fire per local day, always at
    09:30 local (07:30 UTC in summer, 08:30 in winter)."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    for start in (dt.datetime(2026, 3, 26), dt.datetime(2026, 10, 23)):
        t, fires = start, []
        while t < start + dt.timedelta(days=6):
            nxt = timing.next_fire("30 9 * * *", "Europe/Berlin", t)
            assert nxt is not None
            fires.append(nxt)
            t = nxt
        local = [f.replace(tzinfo=dt.UTC).astimezone(berlin) for f in fires]
        days = [x.date() for x in local]
        assert len(days) == len(set(days))
        assert all((x.hour, x.minute) == (9, 30) for x in local)
        offsets = {x.utcoffset() for x in local}
        assert offsets == {dt.timedelta(hours=1), dt.timedelta(hours=2)}
