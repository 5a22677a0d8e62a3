"""docs/scale-out.md against the migrated catalog: every table placed, every primary and unique key of a
distributed table holding its distribution column or listed as a change, every foreign key Citus cannot
keep listed, and no listed change that the schema no longer has."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "scale-out.md"
_NAME = re.compile(r"`([a-z_][a-z0-9_]*)`")


@dataclass
class Placement:
    table: str
    kind: str  # distributed | reference | local
    column: str | None
    changes: set[str] = field(default_factory=set)  # key names (pk_, uq_, fk_) listed as changing
    gains: set[str] = field(default_factory=set)  # columns the table gains on adoption
    source: str = "plan"


def _rows(marker: str) -> list[list[str]]:
    text = DOC.read_text()
    body = text.split(f"<!-- {marker}:begin -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    lines = [ln.strip() for ln in body.splitlines() if ln.strip().startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _plan() -> dict[str, Placement]:
    plan = {}
    for table, kind, column, changes in _rows("plan"):
        names = {n for n in _NAME.findall(changes) if n.startswith(("pk_", "uq_", "fk_"))}
        gains = set(re.findall(r"gains `([a-z_0-9]+)`", changes))
        plan[table] = Placement(table, kind, column or None, names, gains)
    return plan


@dataclass
class Catalog:
    tables: set[str]
    columns: dict[str, dict[str, bool]]  # table -> column -> NOT NULL
    keys: list[asyncpg.Record]  # table, name, primary, columns
    fkeys: list[asyncpg.Record]  # table, name, columns, ref_table, ref_columns


def _rule(table: str, catalog: Catalog) -> Placement | None:
    """The first rule of the plan's rules table that places ``table``."""
    cols = catalog.columns[table]
    for text, kind, column in _rows("rules"):
        names = _NAME.findall(text)
        if text.startswith("has a NOT NULL"):
            hit = cols.get(names[0]) is True
        elif text.startswith("has an"):
            hit = all(n in cols for n in names)
        elif text.startswith("name starts with"):
            hit = table.startswith(tuple(names))
        else:
            pytest.fail(f"docs/scale-out.md: the test cannot read the rule {text!r}")
        if hit:
            return Placement(table, kind, column or None, source=f"rule {text!r}")
    return None


async def _catalog(conn: asyncpg.Connection) -> Catalog:
    tables = await conn.fetch(
        """SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""
    )
    oids = [r["oid"] for r in tables]
    cols = await conn.fetch(
        """SELECT attrelid::regclass::text AS t, attname, attnotnull FROM pg_attribute
           WHERE attrelid = ANY($1::oid[]) AND attnum > 0 AND NOT attisdropped""",
        oids,
    )
    keys = await conn.fetch(
        """SELECT i.indrelid::regclass::text AS t, i.indexrelid::regclass::text AS name, i.indisprimary AS pk,
                  array(SELECT coalesce(a.attname::text, '(expression)') FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                        LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                        ORDER BY k.o) AS cols
           FROM pg_index i WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique""",
        oids,
    )
    fkeys = await conn.fetch(
        """SELECT conrelid::regclass::text AS t, conname AS name, confrelid::regclass::text AS ref,
                  array(SELECT attname::text FROM unnest(conkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
                  array(SELECT attname::text FROM unnest(confkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.o) AS ref_cols
           FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY($1::oid[]) AND conparentid = 0""",
        oids,
    )
    columns: dict[str, dict[str, bool]] = {}
    for r in cols:
        columns.setdefault(r["t"], {})[r["attname"]] = r["attnotnull"]
    return Catalog({r["relname"] for r in tables}, columns, list(keys), list(fkeys))


def _placements(catalog: Catalog, plan: dict[str, Placement], problems: list[str]) -> dict[str, Placement]:
    placed = {}
    for table in sorted(catalog.tables):
        where = plan.get(table) or _rule(table, catalog)
        if where is None:
            problems.append(
                f"table {table} is not placed: add a row for it to docs/scale-out.md's plan (or a rule)"
            )
            continue
        if where.kind not in {"distributed", "reference", "local"}:
            problems.append(f"table {table}: unknown placement {where.kind!r}")
        if where.kind == "distributed":
            present = where.column in catalog.columns[table] or where.column in where.gains
            if not present:
                problems.append(
                    f"table {table} ({where.source}) is distributed by {where.column}, which it lacks: "
                    f"list `gains \\`{where.column}\\`` in the plan or place it otherwise"
                )
        placed[table] = where
    problems.extend(
        f"the plan names table {t}, which the migrated schema does not have"
        for t in sorted(set(plan) - catalog.tables)
    )
    return placed


def _key_problems(catalog: Catalog, placed: dict[str, Placement]) -> tuple[list[str], set[str]]:
    problems, needed = [], set()
    for key in catalog.keys:
        where = placed.get(key["t"])
        if where is None or where.kind != "distributed" or where.column in key["cols"]:
            continue
        needed.add(key["name"])
        if key["name"] not in where.changes:
            kind = "primary key" if key["pk"] else "unique key"
            problems.append(
                f"{kind} {key['name']} of {key['t']} ({', '.join(key['cols'])}) lacks the distribution "
                f"column {where.column} ({where.source}): add it to the key, or list "
                f"`{key['name']}` in the plan's change column for {key['t']}"
            )
    return problems, needed


def _fk_allowed(fk: asyncpg.Record, placed: dict[str, Placement]) -> bool:
    src, dst = placed.get(fk["t"]), placed.get(fk["ref"])
    if src is None or dst is None:
        return True  # the unplaced table is reported already
    if dst.kind == "reference":
        return True
    if src.kind == "local" and dst.kind == "local":
        return True
    if src.kind == dst.kind == "distributed":
        pairs = list(zip(fk["cols"], fk["ref_cols"], strict=True))
        return (src.column, dst.column) in pairs
    return False


def _fk_problems(catalog: Catalog, placed: dict[str, Placement]) -> tuple[list[str], set[str]]:
    problems, needed = [], set()
    for fk in catalog.fkeys:
        if _fk_allowed(fk, placed):
            continue
        needed.add(fk["name"])
        if fk["name"] not in placed[fk["t"]].changes:
            problems.append(
                f"foreign key {fk['name']} from {fk['t']} ({placed[fk['t']].kind}) to {fk['ref']} "
                f"({placed[fk['ref']].kind}) on ({', '.join(fk['cols'])}) cannot be kept by Citus: list "
                f"`{fk['name']}` in the plan's change column for {fk['t']}"
            )
    return problems, needed


async def test_every_table_and_key_fits_the_citus_plan(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        catalog = await _catalog(conn)
    finally:
        await conn.close()
    plan = _plan()
    problems: list[str] = []
    placed = _placements(catalog, plan, problems)
    key_problems, keys_needed = _key_problems(catalog, placed)
    fk_problems, fks_needed = _fk_problems(catalog, placed)
    problems += key_problems + fk_problems
    for where in plan.values():
        for name in sorted(where.changes - keys_needed - fks_needed):
            problems.append(
                f"the plan lists `{name}` as a change for {where.table}, but the schema has no such key "
                "needing one (made already, or renamed): update docs/scale-out.md"
            )
    assert not problems, "docs/scale-out.md and the schema disagree:\n" + "\n".join(problems)


def test_the_plan_names_every_group_it_describes() -> None:
    """The co-location groups the doc promises: events by event_id, the ledger by its message key,
    users by user_id."""
    plan = _plan()
    for table in ("analytics_events", "event_properties"):
        assert (plan[table].kind, plan[table].column) == ("distributed", "event_id")
    ledger = plan["ingest_message_ids"]
    assert (ledger.kind, ledger.column) == ("distributed", "message_key")
    owned = [p for p in plan.values() if p.column == "user_id"]
    assert {"users", "ab_test_assignments", "refresh_tokens"} <= {p.table for p in owned}
