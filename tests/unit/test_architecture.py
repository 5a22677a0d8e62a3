"""The house's rules that code review would otherwise have to remember, checked on the source itself.

- One owner per table: SQL in one domain never writes a table another domain owns, and reads one only
  where that read is declared below with its reason.
- Transactions at the boundary: service and repository modules never open a transaction, a savepoint
  or a connection of their own; routes, jobs and CLI commands do.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from corp_astro import DOMAINS
from kernel.db import Base

ROOT = Path(__file__).resolve().parents[2]
# Every package that owns tables: the registry's domains, the kernel (audit_log) and integrations.
OWNERS = (*DOMAINS, "kernel", "integrations")

# Reads of another domain's tables, each a documented dependency (docs/schema.md).
DECLARED_READS: dict[str, set[str]] = {
    # Rollups, active users and exports are computed from the raw events; experiment_daily counts
    # assignments; exports and rollups resolve users.
    "aggregation": {
        "analytics_events",
        "event_properties",
        "ab_test_assignments",
        "ab_tests",
        "ab_test_variants",
        "users",
    },
    # Conversions are goal events of the assigned users; assignment checks that the user exists. The
    # identity-link job reads identify/alias events and an alias's `$previousId` property
    # (docs/experiment-units.md); experiment_unit_assignments and experiment_identity_links are its own.
    "experiments": {"analytics_events", "event_properties", "users"},
    # Ingest keeps a userId only if that account exists.
    "ingest": {"users"},
    # Retention counts what it drops and checks which days the rollups have finalised.
    "retention": {"analytics_events", "event_properties", "rollup_finalisations"},
    # Workflows start executions from newly ingested events and wait for a user's event
    # (docs/workflows.md); the events are read past a watermark, after ingest committed them.
    "integrations": {"analytics_events", "event_properties"},
    # Notification delivery looks up the push devices of the addressed users.
    "core_api.notifications": {"user_devices"},
    # Reports may point at one of the caller's businesses.
    "core_api.reports": {"businesses"},
}
# Partition upkeep is retention's job by design (the seed's policy): it creates, attaches, detaches and
# drops the monthly partitions of ingest's tables, and moves rows out of their default partitions.
DECLARED_WRITES: dict[str, set[str]] = {"retention": {"analytics_events", "event_properties"}}

_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|COPY|ALTER|CREATE|DROP|TRUNCATE|LOCK)\b")
_WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|COPY|ALTER\s+TABLE|"
    r"DROP\s+TABLE(?:\s+IF\s+EXISTS)?|LOCK\s+TABLE)\s+(?:ONLY\s+)?\"?(\w+)",
    re.IGNORECASE,
)


def _owner_of_module(module: str) -> str | None:
    matches = [o for o in OWNERS if module == o or module.startswith(o + ".")]
    return max(matches, key=len) if matches else None


def _table_owners() -> dict[str, str]:
    for owner in OWNERS:
        importlib.import_module(f"{owner}.models")
    owners = {}
    for mapper in Base.registry.mappers:
        owner = _owner_of_module(mapper.class_.__module__)
        assert owner is not None, mapper.class_
        owners[mapper.local_table.name] = owner
    return owners


def _package_files(owner: str) -> Iterator[Path]:
    folder = ROOT.joinpath(*owner.split("."))
    nested = {o for o in OWNERS if o != owner and o.startswith(owner + ".")}
    for path in sorted(folder.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if not any(module == n or module.startswith(n + ".") for n in nested):
            yield path


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """String constants and f-strings (their literal parts, joined) with their line numbers; docstrings
    and other bare string statements are prose, not SQL."""
    parts_of_fstrings: set[int] = {
        id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = " ".join(
                v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            parts_of_fstrings.update(id(v) for v in node.values)
            yield node.lineno, text
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in parts_of_fstrings
        ):
            yield node.lineno, node.value


def _copy_targets(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Tables named as the first argument of asyncpg's COPY helpers."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"copy_records_to_table", "copy_to_table"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield node.lineno, str(node.args[0].value)


def _violations() -> list[str]:
    owners = _table_owners()
    names = re.compile(r"\b(" + "|".join(sorted(owners, key=len, reverse=True)) + r")\b")
    found = []
    for owner in OWNERS:
        for path in _package_files(owner):
            tree = ast.parse(path.read_text())
            rel = path.relative_to(ROOT)
            writes = [(line, t) for line, t in _copy_targets(tree)]
            for line, text in _strings(tree):
                if not _SQL.search(text):
                    continue
                writes += [(line, m.group(1)) for m in _WRITE.finditer(text)]
                for table in set(names.findall(text)):
                    if owners[table] != owner and table not in DECLARED_READS.get(owner, set()):
                        found.append(f"{rel}:{line}: {owner} names {table} ({owners[table]}'s)")
            for line, table in writes:
                if (
                    table in owners
                    and owners[table] != owner
                    and table not in DECLARED_WRITES.get(owner, set())
                ):
                    found.append(f"{rel}:{line}: {owner} writes {table} ({owners[table]}'s)")
    return sorted(set(found))


def test_every_table_has_one_owner_and_no_domain_touches_another_domains_tables() -> None:
    assert _violations() == []


def test_the_ownership_check_catches_a_foreign_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: a write to ingest's table from aggregation is reported."""
    tree = ast.parse('SQL = "UPDATE analytics_events SET user_id = NULL"')
    assert [m.group(1) for _, t in _strings(tree) for m in _WRITE.finditer(t)] == ["analytics_events"]


_OPENS_TRANSACTION = re.compile(r"\.(transaction|dedicated_connection|acquire)\(")
# The boundaries: a request (routes), a scheduled job (jobs), a command (cli), the group-commit worker of
# ingest, which is the write boundary of every request it serves, and the webhook dispatcher, the
# boundary of every delivery attempt (claim, send, record: each its own short transaction).
_BOUNDARY_MODULES = {"routes", "jobs", "cli"}
_BOUNDARY_FILES = {"ingest/pipeline.py", "integrations/dispatcher.py"}


def _service_and_repository_modules() -> Iterator[Path]:
    """Every domain module but the boundaries (the kernel's own machinery is where boundaries live)."""
    for owner in OWNERS:
        if owner == "kernel":
            continue
        for path in _package_files(owner):
            rel = path.relative_to(ROOT)
            if rel.stem not in _BOUNDARY_MODULES and str(rel) not in _BOUNDARY_FILES:
                yield path


def test_transactions_open_only_at_the_boundary() -> None:
    offenders = []
    for path in _service_and_repository_modules():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if _OPENS_TRANSACTION.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
