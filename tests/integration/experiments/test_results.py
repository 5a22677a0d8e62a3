"""Results: counted in SQL, computed from sufficient statistics, equal to the reference engines.

Golden values: gbstats 0.8.0 (TwoSidedTTest absolute and relative, SequentialTwoSidedTTest absolute,
EffectBayesianABTest default config, check_srm) computed in a throwaway virtualenv; see
tests/unit/experiments/test_stats.py for the full set.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from tests.integration.experiments.conftest import Actors, Client, create, seed_arm, variant_ids
from tests.support import ROOT


async def _three_arms(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(
        client,
        actors.admin,
        variants=[
            {"name": "control", "traffic_percentage": 33.33},
            {"name": "a", "traffic_percentage": 33.33},
            {"name": "b", "traffic_percentage": 33.34},
        ],
    )
    test_id, v = await variant_ids(conn, "checkout")
    await seed_arm(conn, test_id, v["control"], 10000, 1000)
    await seed_arm(conn, test_id, v["a"], 10000, 1100)
    await seed_arm(conn, test_id, v["b"], 9800, 1020)


async def test_results_match_gbstats(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await _three_arms(client, actors, conn)
    r = await client.get("/v1/experiments/checkout/results", headers=actors.analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["control"], body["alpha"], body["phase"]) == ("control", 0.05, 1)
    assert [(v["name"], v["users"], v["conversions"]) for v in body["variants"]] == [
        ("control", 10000, 1000), ("a", 10000, 1100), ("b", 9800, 1020)
    ]  # fmt: skip
    assert body["variants"][1]["conversion_rate"] == pytest.approx(0.11)
    assert [v["expected_share"] for v in body["variants"]] == pytest.approx([0.3333, 0.3333, 0.3334])

    a, b = body["comparisons"]
    # gbstats 0.8.0, control 10000/1000 vs 10000/1100:
    assert a["variant"] == "a"
    assert a["absolute_lift"] == pytest.approx(0.009999999999999995, abs=1e-6)
    assert a["absolute_ci"] == pytest.approx([0.0015035439810862743, 0.018496456018913716], abs=1e-6)
    assert a["p_value"] == pytest.approx(0.021068257468733975, abs=1e-6)
    assert a["relative_lift"] == pytest.approx(0.09999999999999995, abs=1e-6)
    assert a["relative_ci"] == pytest.approx([0.010864708144846927, 0.189135291855153], abs=1e-6)
    assert a["chance_to_beat_control"] == pytest.approx(0.9860609494573318, abs=1e-3)
    assert a["sequential_p_value"] == pytest.approx(0.43372021342570605, abs=1e-6)
    # ... and 10000/1000 vs 9800/1020:
    assert b["p_value"] == pytest.approx(0.34285016997684425, abs=1e-6)
    assert b["relative_ci"] == pytest.approx([-0.04521518638335918, 0.12684783944458355], abs=1e-6)
    assert b["chance_to_beat_control"] == pytest.approx(0.8237967666855521, abs=1e-3)
    # Holm over two comparisons: 2 * 0.02107 = 0.04214 (< 0.05), then max(that, 0.34285).
    assert a["adjusted_p_value"] == pytest.approx(2 * 0.021068257468733975, abs=1e-9)
    assert b["adjusted_p_value"] == pytest.approx(0.34285016997684425, abs=1e-9)
    assert (a["significant"], b["significant"]) == (True, False)
    # check_srm([10000, 10000, 9800], [0.3333, 0.3333, 0.3334]) in gbstats 0.8.0
    assert body["srm"]["p_value"] == pytest.approx(0.2509650324064123, abs=1e-9)
    assert body["srm"]["detected"] is False
    power = body["power"]
    assert 0 < power["mde_at_current_n"] < 0.2
    assert power["users_needed_for_mde"] > 29_800

    # A stricter alpha changes significance (Holm-adjusted 0.042 is not < 0.01).
    r = await client.get("/v1/experiments/checkout/results?alpha=0.01", headers=actors.admin)
    assert r.json()["comparisons"][0]["significant"] is False


async def test_srm_is_per_phase(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    """50/50 then 10/90: pooled counts far from either split are not a mismatch."""
    await create(client, actors.admin)
    test_id, v = await variant_ids(conn, "checkout")
    await seed_arm(conn, test_id, v["control"], 5000, 500, phase=1)
    await seed_arm(conn, test_id, v["green"], 5000, 520, phase=1)
    r = await client.patch(
        "/v1/experiments/checkout",
        json={
            "variants": [
                {"name": "control", "traffic_percentage": 10},
                {"name": "green", "traffic_percentage": 90},
            ]
        },
        headers=actors.admin,
    )
    assert r.status_code == 200
    await seed_arm(conn, test_id, v["control"], 1000, 100, phase=2)
    await seed_arm(conn, test_id, v["green"], 9000, 900, phase=2)
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    assert [x["expected_share"] for x in body["variants"]] == pytest.approx([0.3, 0.7])
    assert body["srm"] == {"p_value": pytest.approx(1.0), "detected": False}

    # A real mismatch inside phase 2 is detected.
    await seed_arm(conn, test_id, v["green"], 3000, 0, phase=2)
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    assert body["srm"]["detected"] is True
    assert body["srm"]["p_value"] < 0.001


async def test_results_edge_cases_and_roles(client: Client, actors: Actors, conn: asyncpg.Connection) -> None:
    await create(client, actors.admin)
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    assert [v["users"] for v in body["variants"]] == [0, 0]
    assert body["comparisons"][0]["p_value"] is None
    assert body["comparisons"][0]["note"]
    assert body["srm"] == {"p_value": 1.0, "detected": False}
    assert body["power"]["users_needed_for_mde"] is None

    test_id, v = await variant_ids(conn, "checkout")
    await seed_arm(conn, test_id, v["control"], 50, 0)
    await seed_arm(conn, test_id, v["green"], 50, 50)
    body = (await client.get("/v1/experiments/checkout/results", headers=actors.analyst)).json()
    assert body["comparisons"][0]["p_value"] is None  # zero baseline, no variance: undefined, not a crash

    assert (await client.get("/v1/experiments/checkout/results", headers=actors.user)).status_code == 403
    assert (await client.get("/v1/experiments/checkout/results", headers=actors.app)).status_code == 401
    for query in (
        "alpha=0",
        "alpha=1.5",
        "mde=-1",
        "power=0.01",
        "alpha=nan",
        "mde=1e-300",
        "mde=1e9",
        "mde=inf",
        "alpha=5e-324",
    ):
        r = await client.get(f"/v1/experiments/checkout/results?{query}", headers=actors.analyst)
        assert r.status_code in (400, 422), (query, r.text)
        assert r.json()["code"]


async def test_cli_results_table(
    client: Client, actors: Actors, conn: asyncpg.Connection, clean_db: str
) -> None:
    await _three_arms(client, actors, conn)
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "corp_astro.cli", "experiments", "results", "checkout"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": clean_db, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    for text in ("checkout", "control", "10,000", "0.042", "SRM", "Holm", "+10.0"):
        assert text in out.stdout, (text, out.stdout)
    missing = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "corp_astro.cli", "experiments", "results", "nope"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": clean_db},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode != 0
    assert "nope" in missing.stderr + missing.stdout
