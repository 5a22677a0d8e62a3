"""The condition language of ``condition`` steps: a small expression language, parsed and walked here.

``trigger.properties.plan == "pro" and not (steps.wait.output.received or variables.n >= 3)``

- names are dotted paths from one of the roots ``trigger``, ``steps``, ``variables``; a segment is a
  key of a JSON object or an index into a JSON array; a missing key is ``null``. Lookups are
  ``dict``/``list`` subscripts on the execution's JSON data, never attribute access, so no Python object,
  builtin or dunder can be named;
- literals: strings (``"..."`` or ``'...'``), numbers, ``true``, ``false``, ``null`` and lists
  ``[1, "a"]``;
- operators: ``==`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` ``in``, ``and`` ``or`` ``not``, parentheses.

There is no ``eval``: the parser builds tuples and ``evaluate`` interprets them. Sizes are bounded
(``MAX_LENGTH`` characters, ``MAX_DEPTH`` nesting), so no input makes it recurse without limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "ROOTS", "ExpressionError", "Node", "evaluate", "parse", "resolve"]

MAX_LENGTH = 1000
MAX_DEPTH = 32
ROOTS = frozenset({"trigger", "steps", "variables"})
Node = tuple[Any, ...]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_$-]+))*)
    )""",
    re.VERBOSE,
)
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})
_WORDS = {"true": True, "false": False, "null": None}


class ExpressionError(ValueError):
    """The expression does not parse; the message says where."""


def _tokens(text: str) -> list[tuple[str, Any]]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"is longer than {MAX_LENGTH} characters")
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        value = m.group(kind)
        out.append(_token(kind, value))
    return out


def _token(kind: str, value: str) -> tuple[str, Any]:
    if kind == "num":
        return ("lit", json.loads(value))
    if kind == "str":
        body = value[1:-1]
        if value[0] == "'":
            body = body.replace('\\"', '"').replace("\\'", "'").replace('"', '\\"')
        try:
            return ("lit", json.loads(f'"{body}"'))
        except ValueError as exc:
            raise ExpressionError(f"bad string literal {value!r}") from exc
    if kind == "op":
        return ("op", value)
    if value in _WORDS:
        return ("lit", _WORDS[value])
    if value in ("and", "or", "not", "in"):
        return ("op", value)
    return ("name", value)


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, op: str) -> bool:
        tok = self.peek()
        if tok == ("op", op):
            self.pos += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.take(op):
            raise ExpressionError(f"expected {op!r} at token {self.pos + 1}")

    def parse(self) -> Node:
        node = self.disjunction(0)
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} at token {self.pos + 1}")  # type: ignore[index]
        return node

    def _deeper(self, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise ExpressionError(f"is nested deeper than {MAX_DEPTH} levels")
        return depth + 1

    def disjunction(self, depth: int) -> Node:
        depth = self._deeper(depth)
        node = self.conjunction(depth)
        while self.take("or"):
            node = ("or", node, self.conjunction(depth))
        return node

    def conjunction(self, depth: int) -> Node:
        node = self.negation(depth)
        while self.take("and"):
            node = ("and", node, self.negation(depth))
        return node

    def negation(self, depth: int) -> Node:
        if self.take("not"):
            return ("not", self.negation(self._deeper(depth)))
        return self.comparison(depth)

    def comparison(self, depth: int) -> Node:
        left = self.operand(depth)
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in _COMPARISONS:
            self.pos += 1
            return ("cmp", tok[1], left, self.operand(depth))
        return left

    def operand(self, depth: int) -> Node:
        tok = self.peek()
        if tok is None:
            raise ExpressionError("ends too early")
        self.pos += 1
        if tok[0] == "lit":
            return ("lit", tok[1])
        if tok[0] == "name":
            return _name(tok[1])
        if tok == ("op", "("):
            node = self.disjunction(depth)
            self.expect(")")
            return node
        if tok == ("op", "["):
            return self.list_literal()
        raise ExpressionError(f"unexpected {tok[1]!r} at token {self.pos}")

    def list_literal(self) -> Node:
        items: list[Any] = []
        while not self.take("]"):
            if items:
                self.expect(",")
            tok = self.peek()
            if tok is None or tok[0] != "lit":
                raise ExpressionError("a list holds literals only")
            self.pos += 1
            items.append(tok[1])
        return ("lit", items)


def _name(dotted: str) -> Node:
    parts = dotted.split(".")
    if parts[0] not in ROOTS:
        raise ExpressionError(f"unknown name {parts[0]!r}: names start with trigger, steps or variables")
    return ("name", tuple(parts))


def parse(text: str) -> Node:
    """The expression's tree; ``ExpressionError`` if it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("is empty")
    return _Parser(_tokens(text)).parse()


def resolve(context: dict[str, Any], path: tuple[str, ...] | list[str]) -> Any:
    """The value at ``path`` in JSON data: object keys and array indexes only; missing is None."""
    value: Any = context
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value if isinstance(value, (dict, list, str, int, float, bool, type(None))) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerced(left: Any, right: Any) -> tuple[Any, Any]:
    """A property stored as text (``"10"``) against a number compares as a number."""
    if _is_number(left) != _is_number(right):
        a, b = _number(left), _number(right)
        if a is not None and b is not None:
            return a, b
    return left, right


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "in":
        return isinstance(right, (list, str, dict)) and _contains(right, left)
    left, right = _coerced(left, right)
    if isinstance(left, bool) != isinstance(right, bool):  # true is not 1
        return op == "!="
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    comparable = (isinstance(left, str) and isinstance(right, str)) or (
        _is_number(left) and _is_number(right)
    )
    if not comparable:
        return False
    return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    return item in container


def evaluate(node: Node, context: dict[str, Any]) -> Any:
    """The value of a parsed expression over ``context`` (``{trigger, steps, variables}``)."""
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        return resolve(context, node[1])
    if kind == "not":
        return not evaluate(node[1], context)
    if kind == "and":
        return bool(evaluate(node[1], context)) and bool(evaluate(node[2], context))
    if kind == "or":
        return bool(evaluate(node[1], context)) or bool(evaluate(node[2], context))
    return _compare(node[1], evaluate(node[2], context), evaluate(node[3], context))
