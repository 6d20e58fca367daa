"""Quantile forecasts served: /forecast's quantiles and lead-time totals, batch columns.

The session's model (tests/serving_fixtures.py) was trained with the default
DEMAND_QUANTILES (0.1, 0.5, 0.9); a version from before quantiles is the same bundle
without its quantile model and contract facts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from demand.contract import FeatureContract
from serving import batch, model_loader
from serving.service import DemandForecast, Item
from tests.parity import offline_rows
from tests.serving_fixtures import service_environment

LEVELS = ["0.1", "0.5", "0.9"]


def items_for(keys, origin, horizons=(1,)):
    return [
        {"store_id": s, "product_id": p, "date": str(origin + dt.timedelta(days=h))}
        for (s, p) in keys
        for h in horizons
    ]


def test_each_item_gets_increasing_whole_quantiles(client, known_keys):
    keys, origin = known_keys
    items = items_for(keys[:5], origin, (1, 4, 7))
    items.insert(0, {"store_id": "S_NOPE", "product_id": "P0000", "date": items[0]["date"]})
    answer = client.post("/forecast", json={"items": items})
    assert answer.status_code == 200, answer.text
    forecasts = answer.json()["forecasts"]
    assert forecasts[0]["quantiles"] is None  # no units, no quantiles
    assert "lead_time" in forecasts[0] and forecasts[0]["lead_time"] is None
    for f in forecasts[1:]:
        q = f["quantiles"]
        assert list(q) == LEVELS
        values = [q[level] for level in LEVELS]
        assert values == sorted(values)  # never crossing
        # the tiny retailer sells whole units: quantiles are whole, zeros allowed
        assert all(v >= 0 and v == int(v) for v in values)
    spread = [f["quantiles"]["0.9"] - f["quantiles"]["0.1"] for f in forecasts[1:]]
    assert max(spread) > 0


def test_served_quantiles_equal_the_quantile_model_on_the_offline_row(
    client, serving_env, feast_store, known_keys
):
    """Training/serving parity for quantiles: what the backtest judged is what is served."""
    keys, origin = known_keys
    sample = keys[:8]
    horizons = [1 + i % 7 for i in range(len(sample))]
    items = [
        {"store_id": s, "product_id": p, "date": str(origin + dt.timedelta(days=h))}
        for (s, p), h in zip(sample, horizons, strict=True)
    ]
    served = client.post("/forecast", json={"items": items}).json()["forecasts"]
    offline = offline_rows(feast_store, serving_env, sample, origin, horizons)
    version = MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri).get_model_version(
        serving_env.model_name, "1"
    )
    contract = FeatureContract.from_tags(version.tags)
    mlflow.set_tracking_uri(serving_env.tracking_uri)
    model = mlflow.catboost.load_model(
        f"models:/{serving_env.model_name}/1/{contract.extra['quantile_model']}"
    )
    raw = model.predict(contract.model_frame(offline))
    scale = offline[contract.target_scale] if contract.target_scale else np.ones(len(offline))
    expected = contract.quantile_units(raw, scale, horizons)
    got = np.array([[f["quantiles"][level] for level in LEVELS] for f in served])
    assert np.allclose(got, expected)


def test_lead_time_total_is_not_the_sum_of_daily_quantiles(client, known_keys):
    keys, origin = known_keys
    items = items_for(keys[:6], origin, (1,))
    answer = client.post(
        "/forecast", json={"items": items, "lead_time": 7, "service_level": 0.95}
    ).json()["forecasts"]
    week = client.post("/forecast", json={"items": items_for(keys[:6], origin, range(1, 8))})
    daily = np.array(
        [[f["quantiles"][level] for level in LEVELS] for f in week.json()["forecasts"]]
    ).reshape(6, 7, 3)
    for f, days in zip(answer, daily, strict=True):
        total = f["lead_time"]
        assert total["periods"] == 7 and list(total["quantiles"]) == LEVELS
        q = [total["quantiles"][level] for level in LEVELS]
        assert q == sorted(q) and total["order_up_to"] >= q[-1]
        # the total's P10 above the sum of P10s, its P90 below the sum of P90s (days are
        # not all low, or all high, at once); a median between
        summed = days.sum(axis=0)
        if summed[2] > summed[0]:
            assert summed[0] <= q[0] and q[2] <= summed[2]
            assert q[2] < summed[2] or summed[2] == 0
    # one period of lead time is the item's own quantiles
    one = client.post("/forecast", json={"items": items, "lead_time": 1}).json()["forecasts"]
    for f in one:
        for level in LEVELS:
            assert abs(f["lead_time"]["quantiles"][level] - f["quantiles"][level]) <= 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"lead_time": 8}, 422, "lead_time"),  # the horizon is 7 days
        ({"lead_time": 0}, 400, "lead_time"),
        ({"lead_time": 3, "service_level": 1.0}, 400, "service_level"),
        ({"lead_time": 3, "service_level": 0}, 400, "service_level"),
        ({"lead_time": 3, "days": 3}, 400, "days"),
    ],
)
def test_bad_lead_time_or_service_level_is_refused_naming_it(
    client, known_keys, body, status, field
):
    keys, origin = known_keys
    answer = client.post("/forecast", json={"items": items_for(keys[:1], origin), **body})
    assert answer.status_code == status, answer.text
    assert field in answer.text


def test_a_lead_time_past_the_horizon_from_the_item_date_names_the_item(client, known_keys):
    keys, origin = known_keys
    items = items_for(keys[:1], origin, (1,)) + items_for(keys[:1], origin, (5,))
    answer = client.post("/forecast", json={"items": items, "lead_time": 4})
    assert answer.status_code == 422
    assert answer.json()["field"] == "items[1].date"


def test_openapi_declares_quantiles_and_lead_time(client):
    document = client.get("/docs.json").json()
    schemas = document["components"]["schemas"]
    forecast = schemas["Forecast"]["properties"]
    assert "quantiles" in forecast and "lead_time" in forecast
    # the request body: the schema with the items (/metadata's QuantileFacts names lead_time too)
    request = next(
        s for s in schemas.values() if {"items", "lead_time"} <= set(s.get("properties", {}))
    )
    assert request["properties"]["service_level"]["exclusiveMaximum"] == 1


def test_a_version_without_quantiles_serves_quantiles_null(service_environ, known_keys):
    """A version registered before quantile forecasts: same answers, ``quantiles: null``,
    and a lead time is refused naming it."""
    keys, origin = known_keys
    service = DemandForecast.inner()
    old = service.loaded
    facts = {k: v for k, v in old.contract.extra.items() if not k.startswith("quantile")}
    facts.pop("backtest_quantile_model", None)
    service.loaded = dataclasses.replace(
        old, quantile_model=None, contract=dataclasses.replace(old.contract, extra=facts)
    )
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=1)) for s, p in keys[:3]
    ]
    answer = service.forecast(items=items)
    assert [f.quantiles for f in answer.forecasts] == [None] * 3
    assert all(f.units is not None for f in answer.forecasts)
    refused = service.forecast(items=items, lead_time=2)
    assert refused.status_code == 422 and b"lead_time" in refused.body


def test_batch_forecasts_carry_one_column_per_quantile(service_environ):
    loaded = model_loader.load(service_environ)
    frame = batch.forecast_all(service_environ, loaded, progress=lambda _: None)
    columns = ["units_p10", "units_p50", "units_p90"]
    assert [c for c in frame.columns if c.startswith("units_p")] == columns
    values = frame[columns].to_numpy()
    assert np.isfinite(values).all() and (np.diff(values, axis=1) >= 0).all()
    totals = batch.lead_times(loaded, frame, 7, service_level=0.9)
    assert len(totals) == frame[["store_id", "product_id"]].drop_duplicates().shape[0]
    weekly = frame.groupby(["store_id", "product_id"])[columns].sum()
    merged = totals.set_index(["store_id", "product_id"]).join(weekly, rsuffix="_summed")
    assert (merged["units_p90"] <= merged["units_p90_summed"]).all()
    assert (merged["order_up_to"] == merged["units_p90"]).all()


def test_an_existing_forecast_table_gains_the_quantile_columns(service_environ, tmp_path):
    """A demand_forecasts table from before quantiles is migrated in place: its rows stay,
    the new origin's rows carry one column per quantile."""
    import uuid

    import psycopg

    from demand.servers import Database
    from tests.servers import drop_database, require_servers

    require_servers(redis=False)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test_quantiles_{uuid.uuid4().hex[:8]}"
    database = Database(url)
    database.ensure()
    try:
        with psycopg.connect(database.conninfo()) as conn:
            conn.execute(
                f"""CREATE TABLE {batch.TABLE} (
                    model_name text NOT NULL, model_version text NOT NULL,
                    store_id text NOT NULL, product_id text NOT NULL,
                    origin_date date NOT NULL, target_date date NOT NULL,
                    horizon integer NOT NULL, units double precision,
                    published_at timestamptz NOT NULL,
                    PRIMARY KEY (model_name, store_id, product_id, origin_date, target_date))"""
            )
            conn.execute(
                f"INSERT INTO {batch.TABLE} VALUES ('old', '0', 'S', 'P', '2020-01-01', "
                "'2020-01-02', 1, 3.0, now())"
            )
        settings = service_environ.model_copy(update={"data_dir": tmp_path, "forecast_db_url": url})
        loaded = model_loader.load(service_environ)
        frame = batch.forecast_all(service_environ, loaded, progress=lambda _: None)
        batch.publish(settings, frame, progress=lambda _: None)
        batch.publish(settings, frame, progress=lambda _: None)  # idempotent, columns there
        with psycopg.connect(database.conninfo()) as conn:
            old = conn.execute(
                f"SELECT units, units_p10, units_p90 FROM {batch.TABLE} WHERE model_name = 'old'"
            ).fetchall()
            new = conn.execute(
                f"SELECT count(*), count(units_p10), sum((units_p10 <= units_p50 AND "
                f"units_p50 <= units_p90)::int) FROM {batch.TABLE} WHERE model_name <> 'old'"
            ).fetchone()
        assert old == [(3.0, None, None)]
        assert new[0] == len(frame) and new[1] == len(frame) and new[2] == len(frame)
    finally:
        drop_database(url)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--lead-time", "8"], "--lead-time"),  # the horizon is 7 days
        (["--lead-time", "3", "--service-level", "1"], "--service-level"),
        (["--lead-time", "3", "--service-level", "0"], "--service-level"),
        (["--service-level", "0.9"], "--service-level"),
    ],
)
def test_forecast_all_refuses_a_bad_lead_time_or_service_level_with_exit_2(
    serving_env, monkeypatch, capsys, args, named
):
    from cli.main import main

    monkeypatch.setenv("DEMAND_DATA_DIR", str(serving_env.data_dir))
    monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", serving_env.tracking_uri)
    assert main(["forecast", "--all", *args]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_forecast_all_publishes_lead_time_totals(serving_env, monkeypatch, tmp_path):
    import pandas as pd

    from cli.main import main

    monkeypatch.setenv("DEMAND_DATA_DIR", str(serving_env.data_dir))
    monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", serving_env.tracking_uri)
    assert main(["forecast", "--all", "--lead-time", "7", "--service-level", "0.95"]) == 0
    written = list((serving_env.forecast_dir / "lead_time").glob("origin=*.parquet"))
    assert len(written) >= 1
    totals = pd.concat(pd.read_parquet(p) for p in written)
    assert {"units_p10", "units_p50", "units_p90", "order_up_to"} <= set(totals.columns)
    assert (totals["lead_time"] == 7).all() and (totals["order_up_to"] >= totals["units_p90"]).all()


@contextlib.contextmanager
def serving_variant(client, settings, **extra):
    """A version of the session's model registered with contract facts ``extra`` changed
    (None: removed), served by the client's service through the production alias and a
    reload, then the alias and the service put back and the version deleted."""
    registry = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    name = settings.model_name
    v1 = registry.get_model_version(name, "1")
    contract = FeatureContract.from_tags(v1.tags)
    facts = {k: v for k, v in {**contract.extra, **extra}.items() if v is not None}
    tags = dataclasses.replace(contract, extra=facts).to_tags()
    variant = registry.create_model_version(name, v1.source, run_id=v1.run_id, tags=tags)
    registry.set_registered_model_alias(name, "production", variant.version)
    try:
        assert client.post("/reload").json()["model"]["version"] == str(variant.version)
        yield variant
    finally:
        registry.set_registered_model_alias(name, "production", "1")
        client.post("/reload")
        registry.delete_model_version(name, variant.version)


def test_metadata_lists_the_quantile_levels_served_and_the_document_declares_them(client):
    meta = client.get("/metadata").json()
    assert meta["quantiles"] == {
        "levels": LEVELS,
        "lead_time": True,
        "max_lead_time": meta["horizon"],
        "service_level": True,
        "short_history": "moving_average_28d",
    }
    document = client.get("/docs.json").json()
    answer = document["paths"]["/metadata"]["get"]["responses"]["200"]["content"]
    ref = answer["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    declared = schemas[ref.rsplit("/", 1)[-1]]
    assert set(declared["properties"]) == set(meta) == set(declared["required"])
    facts = schemas[declared["properties"]["quantiles"]["$ref"].rsplit("/", 1)[-1]]
    assert set(facts["properties"]) == set(meta["quantiles"])
    for name in ("max_lead_time", "short_history"):  # null, as the answer may be
        assert {"type": "null"} in facts["properties"][name]["anyOf"]


def test_metadata_of_a_version_without_quantiles_lists_none(client, serving_env, known_keys):
    """A version registered before quantile forecasts: no levels, no lead time, no
    service level, as /forecast answers it (quantiles null, lead_time refused)."""
    keys, origin = known_keys
    removed = dict.fromkeys(
        ["quantiles", "quantile_model", "backtest_quantile_model", "quantile_offsets"]
    )
    with serving_variant(client, serving_env, **removed):
        assert client.get("/metadata").json()["quantiles"] == {
            "levels": [],
            "lead_time": False,
            "max_lead_time": None,
            "service_level": False,
            "short_history": None,
        }
        body = {"items": items_for(keys[:1], origin)}
        assert client.post("/forecast", json=body).json()["forecasts"][0]["quantiles"] is None
        assert client.post("/forecast", json={**body, "service_level": 0.9}).status_code == 422


def test_metadata_without_served_quantiles_lists_none(service_settings):
    with service_environment(service_settings, DEMAND_SERVE_QUANTILES="false"):
        facts = DemandForecast.inner().metadata()["quantiles"]
    assert facts["levels"] == [] and facts["lead_time"] is False and facts["service_level"] is False


def test_a_short_history_key_gets_its_baseline_interval_served_and_in_batch(
    client, serving_env, known_keys
):
    """Every key short (a rule asking for more history than the retailer has): its units are
    the baseline's, its quantiles the baseline's plus the residual quantiles recorded for
    its horizon (rounded, ≥ 0, increasing), not the quantile model's; batch forecasts
    publish the same."""
    keys, origin = known_keys
    sample = keys[:6]
    items = items_for(sample, origin, range(1, 8))
    before = client.post("/forecast", json={"items": items}).json()["forecasts"]
    with serving_variant(client, serving_env, short_history_min_periods="100000") as variant:
        answer = client.post("/forecast", json={"items": items}).json()["forecasts"]
        contract = FeatureContract.from_tags(variant.tags)
        loaded = model_loader.load(serving_env)
        assert loaded.version == str(variant.version)
        published = batch.forecast_all(serving_env, loaded, progress=lambda _: None)
    residuals = json.loads(contract.extra["short_history_residuals"])
    assert sorted(residuals, key=int) == [str(h) for h in range(1, contract.horizon + 1)]
    got = np.array([[f["quantiles"][level] for level in LEVELS] for f in answer])
    expected = []
    for item, f in zip(items, answer, strict=True):
        assert (f["status"], f["baseline"]) == ("short_history", "moving_average_28d")
        horizon = (dt.date.fromisoformat(item["date"]) - origin).days
        # half up: np.round would take 2.5 to 2
        expected.append(
            sorted(np.floor(max(f["units"] + r, 0.0) + 0.5) for r in residuals[str(horizon)])
        )
    assert got.tolist() == expected
    model = np.array([[f["quantiles"][level] for level in LEVELS] for f in before])
    assert (got != model).any(axis=1).mean() > 0.5  # not the quantile model's
    assert all(f["status"] == "ok" for f in before)
    rows = published.set_index(["store_id", "product_id", "target_date"])
    for item, row in zip(items, got, strict=True):
        key = (item["store_id"], item["product_id"], dt.date.fromisoformat(item["date"]))
        assert rows.loc[key, ["units_p10", "units_p50", "units_p90"]].tolist() == row.tolist()
