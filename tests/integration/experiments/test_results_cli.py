"""``corp-astro experiments results`` against a seeded experiment: 80 columns, json, csv."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys

import asyncpg

from experiments.report import CSV_HEADER
from tests.integration.experiments.conftest import Actors, Client, create, seed_arm, variant_ids
from tests.support import ROOT

NAME = "checkout-redesign-with-a-long-name-for-the-quarterly-review-2026"
LONG = "urgency-banner-with-countdown-timer-and-free-shipping-threshold-message"


async def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "corp_astro.cli", "experiments", "results", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _seed(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(
        client,
        actors.admin,
        NAME,
        start_date="2026-01-05",
        end_date="2026-01-25",
        variants=[
            {"name": "control", "traffic_percentage": 33.33},
            {"name": LONG, "traffic_percentage": 33.33},
            {"name": "b", "traffic_percentage": 33.34},
        ],
    )
    test_id, v = await variant_ids(conn, NAME)
    await seed_arm(conn, test_id, v["control"], 10000, 1000)
    await seed_arm(conn, test_id, v[LONG], 10000, 1100)
    await seed_arm(conn, test_id, v["b"], 9800, 1020)


async def test_results_cli_fits_80_columns_and_says_the_verdicts(
    client: Client, actors: Actors, conn: asyncpg.Connection, clean_db: str
) -> None:
    await _seed(client, actors, conn)
    out = await cli(clean_db, NAME)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, out.stdout
    squashed = "".join(out.stdout.split())
    # The dates (ended, so "ran"), counts with separators, lifts in pp and %, and a verdict per comparison.
    assert "2026-01-05 → 2026-01-25, ran 21 days" in out.stdout
    for text in ("10,000", "9,800", "1,100", "+1.0", "[+0.2, +1.8]", "+10.0", "0.042", "SRM: ok"):
        assert text in out.stdout, (text, out.stdout)
    # gbstats: 10000/1000 vs 10000/1100 is +1.0 pp [0.15, 1.85], Holm p 0.042, 98.6 % chance to beat.
    expected = f"{LONG} beats control on conversion: +1.0 pp [0.2, 1.8], p=0.042 (Holm), 99 % chance to beat"
    assert "".join(expected.split()) in squashed, out.stdout
    assert "b vs control on conversion: no significant difference, +0.4 pp [-0.4, 1.3], p=0.343" in (
        " ".join(line.strip() for line in lines)
    ), out.stdout
    assert "…" not in out.stdout


async def test_results_cli_json_is_the_apis_body_and_csv_has_a_row_per_variant(
    client: Client, actors: Actors, conn: asyncpg.Connection, clean_db: str
) -> None:
    await _seed(client, actors, conn)
    api = await client.get(f"/v1/experiments/{NAME}/results", headers=actors.analyst)
    assert api.status_code == 200, api.text
    out = await cli(clean_db, NAME, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == api.json()
    assert out.stdout.rstrip("\n").encode() == api.content  # the same encoder: the same bytes

    out = await cli(clean_db, NAME, "--format", "csv", "--alpha", "0.01")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert tuple(rows[0]) == CSV_HEADER
    assert [(r["variant"], r["users"], r["conversions"]) for r in rows] == [
        ("control", "10000", "1000"), (LONG, "10000", "1100"), ("b", "9800", "1020")
    ]  # fmt: skip
    assert rows[1]["significant"] == "false"  # Holm p 0.042 is not under alpha 0.01
    assert rows[1]["verdict"].startswith(f"{LONG} vs control on conversion: no significant difference")
    assert float(rows[1]["absolute_lift"]) == api.json()["comparisons"][0]["absolute_lift"]


async def test_results_cli_refuses_an_unknown_experiment_and_format(clean_db: str) -> None:
    missing = await cli(clean_db, "nope")
    assert missing.returncode == 1
    assert "nope" in missing.stderr
    bad = await cli(clean_db, "nope", "--format", "xml")
    assert bad.returncode == 2
    assert "table" in bad.stderr
