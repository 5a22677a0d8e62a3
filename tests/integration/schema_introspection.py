"""Read the seed document and introspect a live database into comparable shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

SEED_DOC = Path(__file__).resolve().parents[2] / "docs" / "seed" / "database-schema.md"

_TYPES = {
    "UUID": "uuid",
    "TEXT": "text",
    "DATE": "date",
    "TIME": "time without time zone",
    "TIMESTAMP": "timestamp without time zone",
    "BOOLEAN": "boolean",
    "INTEGER": "integer",
    "JSONB": "jsonb",
}


@dataclass
class SeedColumn:
    name: str
    type: str
    not_null: bool
    default: str | None
    primary_key: bool
    unique: bool


@dataclass
class SeedTable:
    name: str
    columns: dict[str, SeedColumn] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    unique: list[tuple[str, ...]] = field(default_factory=list)
    indexes: list[tuple[str, ...]] = field(default_factory=list)
    foreign_keys: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = field(default_factory=list)


def _pg_type(seed_type: str) -> str:
    seed_type = seed_type.strip().upper()
    if m := re.fullmatch(r"VARCHAR\((\d+)\)", seed_type):
        return f"character varying({m.group(1)})"
    if m := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", seed_type):
        return f"numeric({m.group(1)},{m.group(2)})"
    return _TYPES[seed_type]


def _pg_default(raw: str, pg_type: str) -> str:
    raw = raw.strip()
    if raw == "CURRENT_TIMESTAMP":
        return "CURRENT_TIMESTAMP"
    if raw in {"true", "false"}:
        return raw
    if raw.startswith("'"):
        cast = "character varying" if pg_type.startswith("character varying") else pg_type
        return f"{raw}::{cast}"
    return raw


def _cols(text: str) -> tuple[str, ...]:
    text = text.strip().strip("`").strip("()")
    return tuple(c.strip().strip("`") for c in text.split(","))


def parse_seed(path: Path = SEED_DOC) -> dict[str, SeedTable]:
    """Every table of the seed document with its columns, keys and indexes."""
    tables: dict[str, SeedTable] = {}
    current: SeedTable | None = None
    for line in path.read_text().splitlines():
        if m := re.match(r"^#### `(\w+)` Table", line):
            current = tables.setdefault(m.group(1), SeedTable(m.group(1)))
            continue
        if current is None:
            continue
        if line.startswith("## "):
            current = None
            continue
        if m := re.match(r"^\|\s*`(\w+)`\s*\|([^|]+)\|[^|]*\|([^|]*)\|\s*$", line):
            name, typ, cons = m.group(1), _pg_type(m.group(2)), m.group(3)
            default = re.search(r"Default: (.+?)\s*$", cons)
            current.columns[name] = SeedColumn(
                name=name,
                type=typ,
                not_null="Not Null" in cons or "Primary Key" in cons,
                default=_pg_default(default.group(1), typ) if default else None,
                primary_key="Primary Key" in cons,
                unique="Unique" in cons,
            )
        elif m := re.match(r"^- Primary Key: (.+)$", line):
            current.primary_key = _cols(m.group(1))
        elif m := re.match(r"^- Unique Index: (.+)$", line):
            current.unique.append(_cols(m.group(1)))
        elif m := re.match(r"^- Index: (.+)$", line):
            current.indexes.append(_cols(m.group(1)))
        elif m := re.match(r"^- Foreign Key: `(\w+)` references `(\w+)\((\w+)\)`", line):
            current.foreign_keys.append(((m.group(1),), m.group(2), (m.group(3),)))
    return tables


@dataclass
class DbTable:
    name: str
    columns: dict[str, tuple[str, bool, str | None]]
    primary_key: tuple[str, ...]
    unique: list[tuple[str, ...]]
    indexes: list[tuple[str, ...]]
    foreign_keys: list[tuple[tuple[str, ...], str, tuple[str, ...], str]]
    partitioned: bool


async def introspect(conn: asyncpg.Connection) -> dict[str, DbTable]:
    """Every top-level table of schema public, as the catalog describes it."""
    rels = await conn.fetch(
        """SELECT c.oid, c.relname, c.relkind = 'p' AS partitioned FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r','p') AND NOT c.relispartition"""
    )
    out: dict[str, DbTable] = {}
    for rel in rels:
        cols = await conn.fetch(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
                      pg_get_expr(d.adbin, d.adrelid) AS def
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
            rel["oid"],
        )
        idx = await conn.fetch(
            """SELECT i.indisprimary, i.indisunique, i.indexprs IS NOT NULL AS expr,
                      ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                            ORDER BY k.ord) AS cols
               FROM pg_index i WHERE i.indrelid = $1""",
            rel["oid"],
        )
        fks = await conn.fetch(
            """SELECT ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
                      c.confrelid::regclass::text AS ref,
                      ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS refcols,
                      c.confdeltype::text AS on_delete
               FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype = 'f' AND c.conparentid = 0""",
            rel["oid"],
        )
        out[rel["relname"]] = DbTable(
            name=rel["relname"],
            columns={c["attname"]: (c["type"], c["attnotnull"], c["def"]) for c in cols},
            primary_key=next((tuple(i["cols"]) for i in idx if i["indisprimary"]), ()),
            unique=[tuple(i["cols"]) for i in idx if i["indisunique"] and not i["expr"]],
            indexes=[tuple(i["cols"]) for i in idx if not i["expr"]],
            foreign_keys=[(tuple(f["cols"]), f["ref"], tuple(f["refcols"]), f["on_delete"]) for f in fks],
            partitioned=rel["partitioned"],
        )
    return out


async def schema_snapshot(conn: asyncpg.Connection) -> dict[str, object]:
    """A complete, order-independent description of schema public (tables, partitions, constraints)."""
    rows = await conn.fetch(
        """SELECT c.relname, c.relkind::text, pg_get_expr(c.relpartbound, c.oid) AS bound
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r','p','i','I','S') ORDER BY 1"""
    )
    cons = await conn.fetch(
        """SELECT conrelid::regclass::text AS rel, conname, pg_get_constraintdef(oid) AS def
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"""
    )
    cols = await conn.fetch(
        """SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default
           FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"""
    )
    return {
        "relations": [tuple(r) for r in rows],
        "constraints": [tuple(r) for r in cons],
        "columns": [tuple(r) for r in cols],
    }
