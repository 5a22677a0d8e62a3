"""The house's size bounds for product code (``make lint``): no module over 400 lines, no function over
60 lines or with a cyclomatic complexity over 15 (radon's measure).

Product code is every package the app ships; tests, migrations and benchmarks are not product code.
Prints each offender and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from radon.complexity import cc_visit

PACKAGES = (
    "kernel",
    "corp_astro",
    "core_api",
    "ingest",
    "experiments",
    "aggregation",
    "retention",
    "integrations",
    "operations",
)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 15


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def offenders(root: Path) -> list[str]:
    """Every breach of the bounds under ``root``, one line each."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            source = path.read_text()
            rel = path.relative_to(root)
            lines = source.count("\n")
            if lines > MAX_MODULE_LINES:
                found.append(f"{rel}: {lines} lines (max {MAX_MODULE_LINES})")
            for fn in _functions(ast.parse(source)):
                length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{rel}:{fn.lineno} {fn.name}: {length} lines (max {MAX_FUNCTION_LINES})")
            for block in cc_visit(source):
                if block.complexity > MAX_COMPLEXITY:
                    found.append(
                        f"{rel}:{block.lineno} {block.name}: complexity {block.complexity} (max {MAX_COMPLEXITY})"
                    )
    return found


def main() -> int:
    """Print the offenders; exit status 1 when there are any."""
    found = offenders(Path(__file__).resolve().parents[1])
    for line in found:
        print(line)
    print(f"{len(found)} over the bounds" if found else "bounds: every module and function within them")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
