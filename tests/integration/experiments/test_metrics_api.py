"""/v1/metrics (admin) and an experiment's metric fields: definitions, validation, pagination."""

from __future__ import annotations

from typing import Any

from tests.integration.experiments.conftest import Actors, Client, create


async def _metric(client: Client, actors: Actors, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/metrics", json=body, headers=actors.admin)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_metric_lifecycle(client: Client, actors: Actors) -> None:
    revenue = await _metric(
        client, actors, name="revenue", kind="sum", event="purchase", property="amount", direction="increase",
        window_hours=72, cap_percentile=0.99,
    )  # fmt: skip
    assert (revenue["kind"], revenue["event"], revenue["property"], revenue["window_hours"]) == (
        "sum", "purchase", "amount", 72
    )  # fmt: skip
    await _metric(client, actors, name="sessions", kind="count", event="session_start", direction="increase")
    rps = await _metric(
        client, actors, name="revenue_per_session", kind="ratio", numerator="revenue", denominator="sessions",
        direction="increase",
    )  # fmt: skip
    assert (rps["numerator"], rps["denominator"], rps["event"]) == ("revenue", "sessions", None)
    d7 = await _metric(
        client, actors, name="d7_retention", kind="retention", event="app_open", retention_days=[1, 8],
        direction="increase",
    )  # fmt: skip
    assert d7["retention_days"] == [1, 8]

    r = await client.get("/v1/metrics/revenue", headers=actors.admin)
    assert r.status_code == 200
    assert r.json()["cap_percentile"] == 0.99

    r = await client.patch(
        "/v1/metrics/revenue", json={"cap_percentile": None, "direction": "decrease"}, headers=actors.admin
    )
    assert r.status_code == 200, r.text
    assert (r.json()["cap_percentile"], r.json()["direction"]) == (None, "decrease")

    page = (await client.get("/v1/metrics?limit=2", headers=actors.admin)).json()
    assert [m["name"] for m in page["items"]] == ["d7_retention", "revenue"]
    rest = (
        await client.get(f"/v1/metrics?limit=2&cursor={page['next_cursor']}", headers=actors.admin)
    ).json()
    assert [m["name"] for m in rest["items"]] == ["revenue_per_session", "sessions"]
    assert rest["next_cursor"] is None


async def test_metric_errors(client: Client, actors: Actors) -> None:
    r = await client.post(
        "/v1/metrics",
        json={"name": "x", "kind": "median", "event": "e", "direction": "increase"},
        headers=actors.admin,
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"

    r = await client.post(
        "/v1/metrics",
        json={"name": "x", "kind": "sum", "event": "e", "direction": "increase"},
        headers=actors.admin,
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert body["details"] == [{"field": "body.property", "message": "A sum metric needs property."}]

    r = await client.post(
        "/v1/metrics",
        json={
            "name": "r",
            "kind": "ratio",
            "numerator": "nope",
            "denominator": "nope2",
            "direction": "increase",
        },
        headers=actors.admin,
    )
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["details"]] == ["body.numerator", "body.denominator"]

    r = await client.post(
        "/v1/metrics",
        json={"name": "k", "kind": "binomial", "event": "e", "direction": "increase", "cap_percentile": 0.9},
        headers=actors.admin,
    )
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "body.cap_percentile"

    await _metric(client, actors, name="dup", kind="count", event="e", direction="increase")
    r = await client.post(
        "/v1/metrics",
        json={"name": "dup", "kind": "count", "event": "e", "direction": "increase"},
        headers=actors.admin,
    )
    assert r.status_code == 409

    for method, path in (("get", "/v1/metrics/missing"), ("patch", "/v1/metrics/missing")):
        r = await client.request(
            method.upper(), path, json={} if method == "patch" else None, headers=actors.admin
        )
        assert r.status_code == 404
        assert r.json()["code"] == "not_found"

    r = await client.get("/v1/metrics", headers=actors.analyst)
    assert r.status_code == 403


async def test_experiment_metric_fields(client: Client, actors: Actors) -> None:
    for name in ("revenue", "orders", "crashes"):
        kind = {"revenue": "sum", "orders": "count", "crashes": "count"}[name]
        extra = {"property": "amount"} if kind == "sum" else {}
        await _metric(
            client,
            actors,
            name=name,
            kind=kind,
            event=name,
            direction="decrease" if name == "crashes" else "increase",
            **extra,
        )
    exp = await create(
        client,
        actors.admin,
        primary_metric="revenue",
        secondary_metrics=["orders"],
        guardrail_metrics=["crashes"],
        correction="bh",
    )
    assert (exp["primary_metric"], exp["secondary_metrics"], exp["guardrail_metrics"]) == (
        "revenue",
        ["orders"],
        ["crashes"],
    )
    assert exp["cuped"] == {"enabled": True, "lookback_days": 14}
    assert exp["correction"] == "bh"

    r = await client.patch(
        "/v1/experiments/checkout",
        json={"cuped": {"enabled": False, "lookback_days": 7}, "secondary_metrics": []},
        headers=actors.admin,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["primary_metric"], body["secondary_metrics"], body["cuped"]) == (
        "revenue",
        [],
        {"enabled": False, "lookback_days": 7},
    )

    r = await client.patch(
        "/v1/experiments/checkout", json={"secondary_metrics": ["revenue", "nope"]}, headers=actors.admin
    )
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["details"]] == [
        "body.secondary_metrics[0]",
        "body.secondary_metrics[1]",
    ]

    r = await client.patch(
        "/v1/experiments/checkout", json={"correction": "bonferroni"}, headers=actors.admin
    )
    assert r.status_code == 422

    listed = (await client.get("/v1/experiments", headers=actors.admin)).json()["items"]
    assert listed[0]["guardrail_metrics"] == ["crashes"]
    # An experiment without metrics has the defaults.
    plain = await create(client, actors.admin, name="plain")
    assert (plain["primary_metric"], plain["secondary_metrics"], plain["correction"]) == (None, [], "holm")
