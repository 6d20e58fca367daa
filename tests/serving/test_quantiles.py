"""Quantile forecasts served: /forecast's quantiles and lead-time totals, batch columns.

The session's model (tests/serving_fixtures.py) was trained with the default
DEMAND_QUANTILES (0.1, 0.5, 0.9); a version from before quantiles is the same bundle
without its quantile model and contract facts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from demand.contract import FeatureContract
from serving import batch, model_loader
from serving.service import DemandForecast, Item
from tests.parity import offline_rows

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
    request = next(s for name, s in schemas.items() if "lead_time" in s.get("properties", {}))
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
