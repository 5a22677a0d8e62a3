"""Parquet exports: read back by DuckDB, Polars and PyArrow with the database's rows and properties."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from aggregation.exports import write_dataset
from tests.integration.aggregation.conftest import Event, create_users, insert_events
from tests.support import ROOT

D = dt.date(2026, 3, 10)
TRICKY = 'quote " backslash \\ newline \n tab \t ctrl \x01 unicode é ☃ 😀'


async def _events(conn: asyncpg.Connection) -> list[Event]:
    users = await create_users(conn, 2)
    events = [
        Event(
            dt.datetime.combine(D + dt.timedelta(days=i % 3), dt.time(i % 24, i % 60, 1, 123456)),
            event_name=f"e{i % 4}",
            user_id=users[i % 2] if i % 3 else None,
            anonymous_id=None if i % 3 else f"anon-{i}",
            device_id=f"d{i}",
            properties={"plan": f"p{i}", "screen": TRICKY} if i % 2 else {},
        )
        for i in range(50)
    ]
    await insert_events(conn, events)
    return events


async def _db_properties(conn: asyncpg.Connection) -> dict[str, dict[str, str]]:
    rows = await conn.fetch(
        """SELECT e.event_id::text AS id,
                  coalesce(jsonb_object_agg(p.property_name, p.property_value)
                           FILTER (WHERE p.property_name IS NOT NULL), '{}') AS props
           FROM analytics_events e LEFT JOIN event_properties p
             ON p.event_id = e.event_id AND p."timestamp" = e."timestamp"
           GROUP BY e.event_id"""
    )
    return {r["id"]: json.loads(r["props"]) if isinstance(r["props"], str) else r["props"] for r in rows}


async def test_dataset_reads_back_in_duckdb_polars_and_pyarrow(
    conn: asyncpg.Connection, clean_db: str, tmp_path: Path
) -> None:
    events = await _events(conn)
    out = tmp_path / "events"
    stats = write_dataset(clean_db, D - dt.timedelta(days=1), D + dt.timedelta(days=3), out)
    assert stats.rows == len(events) == 50
    assert sorted(p.name for p in out.iterdir()) == [
        f"event_date={D + dt.timedelta(days=i)}" for i in range(3)
    ]
    want = await _db_properties(conn)

    glob = f"{out}/**/*.parquet"
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true)").fetchone() == (
        50,
    )
    by_date = con.execute(
        f"SELECT event_date::VARCHAR, count(*) FROM read_parquet('{glob}', hive_partitioning=true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert by_date == [(str(D + dt.timedelta(days=i)), n) for i, n in enumerate((17, 17, 16))]
    # Ids read as DuckDB UUIDs, properties as one JSON object string (PostHog's convention).
    types = con.execute(
        f"SELECT typeof(event_id), typeof(user_id), typeof(source_id), typeof(properties) "
        f"FROM read_parquet('{glob}') LIMIT 1"
    ).fetchone()
    assert types == ("UUID", "UUID", "UUID", "VARCHAR")
    duck = con.execute(
        f"SELECT event_id, properties FROM read_parquet('{glob}', hive_partitioning=true)"
    ).fetchall()
    assert {str(k): json.loads(v) for k, v in duck} == want
    # DuckDB's own JSON functions read it too.
    screens = con.execute(
        f"SELECT count(*) FILTER (WHERE properties::JSON ->> 'screen' = $1), "
        f"count(*) FILTER (WHERE properties::JSON ->> 'plan' IS NULL) FROM read_parquet('{glob}')",
        [TRICKY],
    ).fetchone()
    assert screens == (25, 25)
    users = dict(
        con.execute(f"SELECT event_id::VARCHAR, user_id::VARCHAR FROM read_parquet('{glob}')").fetchall()
    )
    assert users == {str(e.event_id): e.user_id and str(e.user_id) for e in events}

    frame = pl.scan_parquet(out, hive_partitioning=True).collect()
    assert frame.height == 50
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert frame.schema["event_id"] == pl.Binary  # Polars has no UUID type: the 16 bytes
    assert frame.schema["properties"] == pl.String
    rows = list(frame.iter_rows(named=True))
    assert {str(uuid.UUID(bytes=r["event_id"])): json.loads(r["properties"]) for r in rows} == want
    original = {str(e.event_id): e.timestamp.replace(tzinfo=dt.UTC) for e in events}
    assert {str(uuid.UUID(bytes=r["event_id"])): r["timestamp"] for r in rows} == original
    plans = frame.select(pl.col("properties").str.json_path_match("$.plan")).to_series().drop_nulls()
    assert sorted(plans.to_list()) == sorted(f"p{i}" for i in range(50) if i % 2)

    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 50
    assert table.schema.field("event_id").type == pa.uuid()
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("properties").type == pa.string()
    assert {
        str(i): json.loads(p)
        for i, p in zip(table["event_id"].to_pylist(), table["properties"].to_pylist(), strict=True)
    } == want
    for path in ds.dataset(out, format="parquet").files:
        meta = pq.ParquetFile(path)
        assert str(meta.schema.column(0).logical_type) == "UUID"
        column = meta.metadata.row_group(0).column(0)
        assert column.compression == "ZSTD"


async def test_rerun_replaces_days_instead_of_duplicating(
    conn: asyncpg.Connection, clean_db: str, tmp_path: Path
) -> None:
    await _events(conn)
    out = tmp_path / "events"
    write_dataset(clean_db, D, D + dt.timedelta(days=2), out)
    write_dataset(clean_db, D, D + dt.timedelta(days=2), out)
    glob = f"{out}/**/*.parquet"
    count = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()
    assert count == (50,)
    # Events of D+2 are erased upstream: re-exporting that day removes its partition.
    await conn.execute(
        'DELETE FROM analytics_events WHERE "timestamp" >= $1',
        dt.datetime.combine(D + dt.timedelta(days=2), dt.time()),
    )
    write_dataset(clean_db, D + dt.timedelta(days=2), D + dt.timedelta(days=2), out)
    assert not (out / f"event_date={D + dt.timedelta(days=2)}").exists()
    assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone() == (34,)
    # No staging directories are left beside the dataset.
    assert os.listdir(tmp_path) == ["events"]


async def test_cli_export_and_aggregate(conn: asyncpg.Connection, clean_db: str, tmp_path: Path) -> None:
    await _events(conn)
    env = {**os.environ, "DATABASE_URL": clean_db, "CORP_ASTRO_LOG_LEVEL": "WARNING"}
    out = tmp_path / "cli-out"
    cli = [sys.executable, "-m", "corp_astro.cli"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*cli, "export", "events", "--from", str(D), "--to", str(D + dt.timedelta(days=2)), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "50 events in 3 files" in done.stdout
    assert pl.scan_parquet(out, hive_partitioning=True).collect().height == 50

    bad = await asyncio.to_thread(
        subprocess.run,
        [*cli, "export", "events", "--from", str(D), "--to", str(D - dt.timedelta(days=1)), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--to is before --from" in bad.stderr

    agg = await asyncio.to_thread(
        subprocess.run,
        [*cli, "aggregate", "--from", str(D), "--to", str(D + dt.timedelta(days=2)), "--job", "daily"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert agg.returncode == 0, agg.stderr
    assert "ok: 3" in agg.stdout
    assert await conn.fetchval("SELECT sum(events) FROM event_rollups_daily") == 50
