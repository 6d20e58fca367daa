"""The service class directly, its HTTP contract through to_asgi(), and train/serve parity."""

from __future__ import annotations

import datetime as dt
import shutil

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from demand.contract import FeatureContract
from serving import model_loader
from serving.service import EXAMPLE_ITEMS, DemandForecast, Item
from tests.parity import offline_rows


@pytest.fixture(scope="module")
def loaded(service_settings):
    return model_loader.load(service_settings)


def items_for(keys, origin, horizons=(1,)):
    return [
        {"store_id": s, "product_id": p, "date": str(origin + dt.timedelta(days=h))}
        for (s, p) in keys
        for h in horizons
    ]


def test_service_class_answers_keys_in_order(service_environ, known_keys, monkeypatch):
    from serving import predict

    keys, origin = known_keys
    inputs = []  # what the model is given: feature name → values, one per known item
    model_input = predict.model_input
    monkeypatch.setattr(
        predict, "model_input", lambda c, columns, rows: inputs.append(columns) or model_input(
            c, columns, rows
        )
    )  # fmt: skip
    service = DemandForecast.inner()
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=h))
        for s, p in keys[:3]
        for h in (1, 7)
    ]
    items.insert(1, Item(store_id="S_NOPE", product_id="P0000", date=origin + dt.timedelta(1)))
    answer = service.forecast(items=items)
    assert answer.model.version == "1" and answer.model.alias == "production"
    assert [(f.store_id, f.product_id, f.date) for f in answer.forecasts] == [
        (i.store_id, i.product_id, i.date) for i in items
    ]
    statuses = [f.status for f in answer.forecasts]
    assert statuses == ["ok", "missing_features", *["ok"] * 5]
    assert answer.forecasts[1].units is None
    # feeds in step: nothing stale; a key the store lacks has every view absent
    assert [f.stale for f in answer.forecasts if f.status == "ok"] == [[]] * 6
    assert len(answer.forecasts[1].stale) == len(service.loaded.lookup.views)
    assert all(f.units is not None and f.units >= 0 for f in answer.forecasts if f.status == "ok")
    # the horizon reaches the model: each known item's days from the origin, as asked
    # (comparing the units of days 1 and 7 would not show it: their weekdays differ too)
    (given,) = inputs
    assert list(given["horizon_days"]) == [1, 7] * 3
    assert list(given["target_day_of_week"]) == [
        (origin + dt.timedelta(days=h)).weekday() for _ in range(3) for h in (1, 7)
    ]


def test_example_items_are_valid_requests(client):
    response = client.post("/forecast", json={"items": EXAMPLE_ITEMS})
    assert response.status_code == 200
    assert len(response.json()["forecasts"]) == len(EXAMPLE_ITEMS)


def test_health_metadata_and_metrics(client, serving_env):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    meta = client.get("/metadata").json()
    assert meta["model"] == {"name": serving_env.model_name, "version": "1", "alias": "production"}
    assert meta["feature_service"] == "demand_forecast_v1"
    version = MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri).get_model_version(
        serving_env.model_name, "1"
    )
    assert meta["features"] == FeatureContract.from_tags(version.tags).features
    assert meta["training_range"]["start"] < meta["training_range"]["end"]
    assert meta["materialized_at"].startswith("20")
    assert "bentoml_service_request" in client.get("/metrics").text


BAD_REQUESTS = [
    # (body, status, what the error names)
    (b'{"items": [', 400, "json_invalid"),
    (b'{"items": {"store_id": "S000"}}', 400, "items"),
    (b'{"items": [{"store_id": 7, "product_id": "P0000", "date": "2023-07-30"}]}', 400, "store_id"),
    (b'{"items": [{"store_id": "S000", "product_id": "P0000"}]}', 400, "date"),
    (b'{"items": [{"store_id": "S000", "product_id": "P0000", "date": 20230730}]}', 400, "date"),
    (
        b'{"items": [{"store_id": "S000", "product_id": "P0000", "date": "30/07/2023"}]}',
        400,
        "date",
    ),
    (
        b'{"items": [{"store_id": "S0", "product_id": "P0", "date": "2023-07-30", "qty": 1}]}',
        400,
        "qty",
    ),
]


@pytest.mark.parametrize(("body", "status", "names"), BAD_REQUESTS)
def test_malformed_requests_are_400_naming_the_field(client, body, status, names):
    response = client.post("/forecast", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    payload = response.json()
    assert "validation error" in payload["error"]
    where = [str(part) for d in payload["detail"] for part in d["loc"]]
    assert names in where or names == payload["detail"][0]["type"]


def test_dates_outside_the_horizon_are_422(client, known_keys):
    keys, origin = known_keys
    for days in (0, -3, 8):
        items = items_for(keys[:2], origin) + items_for(keys[:1], origin, (days,))
        response = client.post("/forecast", json={"items": items})
        assert response.status_code == 422
        assert response.json()["field"] == "items[2].date"
        assert f"origin {origin}" in response.json()["error"]


def test_too_many_items_and_unused_price_are_422(client, known_keys):
    keys, origin = known_keys
    response = client.post("/forecast", json={"items": items_for(keys[:1], origin) * 51})
    assert response.status_code == 422
    assert response.json() == {
        "error": "items: 51 items; at most 50 per request",
        "field": "items",
    }
    item = {**items_for(keys[:1], origin)[0], "price": 9.99}
    response = client.post("/forecast", json={"items": [item]})
    assert response.status_code == 422
    assert response.json()["field"] == "items[0].price"


def test_unknown_keys_are_answered_without_a_number(client, known_keys):
    keys, origin = known_keys
    items = [
        *items_for(keys[:1], origin),
        {"store_id": "S_UNKNOWN", "product_id": "P0000", "date": "2023-07-30"},
        {"store_id": keys[0][0], "product_id": "P_NEVER", "date": "1999-01-01"},
    ]
    response = client.post("/forecast", json={"items": items})
    assert response.status_code == 200
    forecasts = response.json()["forecasts"]
    assert [f["status"] for f in forecasts] == ["ok", "missing_features", "missing_features"]
    assert forecasts[1]["units"] is None and forecasts[2]["units"] is None
    empty = client.post("/forecast", json={"items": []})  # nothing asked: a client's mistake
    assert empty.status_code == 400 and empty.json()["detail"][0]["type"] == "too_short"


def test_store_unreachable_is_503_and_recovers(client, serving_env, known_keys):
    keys, origin = known_keys
    body = {"items": items_for(keys[:2], origin)}
    db = serving_env.feast_dir / "online_store.db"
    away = db.with_suffix(".away")
    db.rename(away)
    try:
        response = client.post("/forecast", json=body)
        assert response.status_code == 503
        assert "online store unavailable" in response.json()["error"]
        assert f"sqlite online store at {db}" in response.json()["error"]
        assert client.get("/readyz").status_code == 503
        assert client.get("/livez").status_code == 200
        assert not db.exists()  # serving never creates an empty store in its place
    finally:
        away.rename(db)
    assert client.get("/readyz").status_code == 200
    assert client.post("/forecast", json=body).status_code == 200


def test_reload_follows_the_alias(client, serving_env, known_keys):
    keys, origin = known_keys
    registry = MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri)
    name = serving_env.model_name
    v1 = registry.get_model_version(name, "1")
    v2 = registry.create_model_version(name, v1.source, run_id=v1.run_id, tags=v1.tags)
    body = {"items": items_for(keys[:1], origin)}
    before = client.post("/forecast", json=body).json()
    assert client.post("/reload").json() == {"model": before["model"], "changed": False}
    registry.set_registered_model_alias(name, "production", v2.version)
    try:
        answer = client.post("/reload").json()
        assert answer["changed"] is True and answer["model"]["version"] == str(v2.version)
        after = client.post("/forecast", json=body).json()
        assert after["model"]["version"] == str(v2.version)
        assert after["forecasts"][0]["units"] == pytest.approx(before["forecasts"][0]["units"])
    finally:
        registry.set_registered_model_alias(name, "production", "1")
        client.post("/reload")
    assert client.get("/metadata").json()["model"]["version"] == "1"


def test_refuses_a_model_whose_features_the_store_lacks(serving_env):
    registry = MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri)
    v1 = registry.get_model_version(serving_env.model_name, "1")
    contract = FeatureContract.from_tags(v1.tags)
    bad = FeatureContract(
        **{
            **contract.__dict__,
            "features": [*contract.features, "units_lag_365"],
            "dtypes": {**contract.dtypes, "units_lag_365": "float"},
        }
    )
    odd = registry.create_model_version(
        serving_env.model_name, v1.source, run_id=v1.run_id, tags=bad.to_tags()
    )
    with pytest.raises(
        model_loader.ServingError, match="lacks features the model needs: units_lag_365"
    ):
        model_loader.load(serving_env, version=odd.version)


def test_refuses_views_never_materialized_and_never_creates_a_store(serving_env, tmp_path):
    """A data dir whose views were applied but never materialized, then one without a store."""
    from features.publish import apply

    fresh = serving_env.model_copy(update={"data_dir": tmp_path})
    shutil.copytree(serving_env.feature_dir, fresh.feature_dir)
    apply(fresh)
    with pytest.raises(
        model_loader.ServingError,
        match=r"no materialization of store_product_sales.* into the sqlite online store at "
        r".*; run `demand materialize`",
    ):
        model_loader.load(fresh, version="1")
    online = fresh.feast_dir / "online_store.db"
    online.unlink()
    with pytest.raises(
        model_loader.ServingError, match=rf"no online store at {online}; run `demand features`"
    ):
        model_loader.load(fresh, version="1")
    assert not online.exists()  # Feast's SQLite store would have created an empty one


def test_served_units_equal_the_model_on_the_offline_row(
    client, serving_env, feast_store, known_keys
):
    """Training/serving parity: the offline row at the same origin, from Feast's offline store."""
    keys, origin = known_keys
    sample = keys[:10]
    horizons = [1 + i % 7 for i in range(len(sample))]
    items = [
        {"store_id": s, "product_id": p, "date": str(origin + dt.timedelta(days=h))}
        for (s, p), h in zip(sample, horizons, strict=True)
    ]
    served = client.post("/forecast", json={"items": items}).json()["forecasts"]
    offline = offline_rows(feast_store, serving_env, sample, origin, horizons)
    mlflow.set_tracking_uri(serving_env.tracking_uri)
    model = mlflow.catboost.load_model(f"models:/{serving_env.model_name}/1")
    contract = FeatureContract.from_tags(
        MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri)
        .get_model_version(serving_env.model_name, "1")
        .tags
    )
    expected = contract.predict(model, offline)
    assert [f["status"] for f in served] == ["ok"] * len(sample)
    assert np.allclose([f["units"] for f in served], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("args", [["--version", "99"], ["--alias", "staging"]])
def test_serve_without_such_a_model_says_what_to_do(serving_env, monkeypatch, capsys, args):
    from cli.main import main

    monkeypatch.setenv("DEMAND_DATA_DIR", str(serving_env.data_dir))
    monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", serving_env.tracking_uri)
    assert main(["serve", *args]) == 1
    err = capsys.readouterr().err
    assert "demand models promote" in err and "Traceback" not in err
