"""Aggregated sales, weekly and daily, through the whole platform.

A retailer's export made from the tiny generated retailer (``synthetic.aggregate``):
four stores, twelve products, sales per week (two years, weeks starting on Sunday,
planned promotions, temperature only, no forecasts) or per day (seven months,
temperature and rain, forecasts, planned promotions) → feature build → Feast apply
and materialize → training (the model must beat the naive baseline) → staging and
production through the gates → the service answering for the next period, and the
batch forecasts.
"""

from __future__ import annotations

import datetime as dt

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from demand.calendar import Calendar, Grain
from demand.contract import FeatureContract
from demand.featurestore import open_store
from demand.settings import get_settings
from examples.generate import EXAMPLES
from examples.generate import HERE as EXAMPLES_DIR
from examples.generate import write as write_example
from features import build_duckdb, pipeline, plan, publish
from rawdata import importer
from registry import lifecycle
from registry.gates import Stage
from synthetic import aggregate, generator
from training import dataset, train

pytestmark = pytest.mark.e2e

WEEKLY = {"example": "weekly", **EXAMPLES["weekly"]}
DAILY = {"example": "daily", **EXAMPLES["daily"]}


@pytest.fixture(scope="module", params=[WEEKLY, DAILY], ids=["weekly", "daily"])
def trained(request, tmp_path_factory):
    """Settings over a shipped example export, imported, built, published and trained on.

    The files are ``examples/<weekly|daily>/`` as a user would import them: through
    `demand import`'s checks, then the validation gate of the build.
    """
    spec = request.param
    root = tmp_path_factory.mktemp(f"aggregated_{spec['grain']}")
    settings = get_settings(
        data_dir=root,
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        iterations=150,
        serve_reload_seconds=0.0,
    )
    report = importer.run_import(
        EXAMPLES_DIR / spec["example"], settings.raw_dir, progress=lambda _: None
    )
    # the example files are clean: every row of every file accepted, the grain detected
    assert [(f.read, f.quarantined) for f in report.files] == [(f.read, 0) for f in report.files]
    assert (report.grain, report.week_start) == (spec["grain"], spec["week_start"])
    pipeline.build_features(settings, progress=lambda _: None)
    publish.apply(settings)
    publish.materialize(settings)
    result = train.run(settings, device="cpu", progress=lambda _: None)
    return spec, settings, result


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_shipped_examples_are_what_make_examples_writes(name, tmp_path):
    rows = write_example(name, tmp_path)
    for table in rows:
        shipped = (EXAMPLES_DIR / name / f"{table}.csv").read_bytes()
        assert (tmp_path / f"{table}.csv").read_bytes() == shipped, "run `make examples`"
    assert {p.name for p in (EXAMPLES_DIR / name).glob("*.csv")} == {f"{t}.csv" for t in rows}


def _contract(settings, version: str = "1") -> FeatureContract:
    tags = (
        MlflowClient(settings.tracking_uri, settings.tracking_uri)
        .get_model_version(settings.model_name, version)
        .tags
    )
    return FeatureContract.from_tags(tags)


def test_the_grain_is_in_the_feature_tables_and_the_contract(trained):
    spec, settings, _ = trained
    built = plan.lineage(settings.feature_dir)
    assert built.grain == Grain(spec["grain"])
    assert built.calendar.week_start == spec["week_start"]
    contract = _contract(settings)
    assert (contract.grain, contract.week_start) == (spec["grain"], spec["week_start"])
    if spec["grain"] == "week":
        assert contract.feature_service == "demand_forecast_weekly_v2"
        assert contract.horizon == settings.weekly_horizon == 4
        stamps = pd.read_parquet(settings.feature_dir / "store_product_weekly.parquet")[
            "event_timestamp"
        ]
        # a week is known when it closes: 00:00 UTC of the next week's first day, a Sunday
        assert set(stamps.dt.dayofweek) == {6} and set(stamps.dt.hour) == {0}
    else:
        assert contract.feature_service == "demand_forecast_v2"
        assert contract.horizon == settings.horizon


def test_the_model_has_what_the_data_gives_and_nothing_made_up(trained):
    spec, settings, _ = trained
    features = set(_contract(settings).features)
    # planned promotions are inputs; the observed temperature is
    assert {"planned_price", "planned_promo", "temperature_c"} <= features
    # no customer ids: no co-purchase, repeat-purchase or installed-base features
    absent = {"customers_7", "customers_28", "copurchase_partner_id", "repeat_pairs"}
    absent |= {"replacements_due_7d", "installed_base_customers", "replacements_due_on_target"}
    assert not absent & features
    assert "sunshine_hours" not in features  # a measure the data set does not give
    # the climate of the target period (past years), never its observed weather
    assert "climate_temperature_c" in features and "climate_sunshine_hours" not in features
    if spec["forecasts"]:
        assert "forecast_temperature_c" in features
        assert "forecast_sunshine_hours" not in features
    else:
        assert not {f for f in features if f.startswith("forecast_")}
    # the declared lifespan stands in for the estimate
    assert "replacement_interval_days" in features


def test_the_model_beats_the_naive_baselines(trained):
    spec, _, result = trained
    wape = result.summary["wape"]
    # each baseline under the name of its window at the grain
    names = {
        "week": ["seasonal_naive_52w", "moving_average_4w", "naive_1w"],
        "day": ["seasonal_naive_7d", "moving_average_28d", "naive_1d"],
    }[spec["grain"]]
    assert sorted(wape.index) == sorted(["model", *names])
    for name in names:
        assert wape["model"] < wape[name], result.summary


@pytest.fixture(scope="module")
def promoted(trained):
    spec, settings, _ = trained
    staging = lifecycle.promote(settings, "1", Stage.staging)
    production = lifecycle.promote(settings, "1", Stage.production)
    return spec, settings, staging, production


def test_the_version_passes_the_gates(promoted):
    _, settings, staging, production = promoted
    assert staging.gates.passed and production.gates.passed
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    assert str(client.get_model_version_by_alias(settings.model_name, "production").version) == "1"


@pytest.fixture(scope="module")
def service(promoted):
    _, settings, *_ = promoted
    from serving.service import DemandForecast

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMAND_DATA_DIR", str(settings.data_dir))
        patch.setenv("DEMAND_MLFLOW_TRACKING_URI", settings.tracking_uri)
        patch.setenv("DEMAND_SERVE_RELOAD_SECONDS", "0")
        patch.setenv("BENTOML_HOME", str(settings.bentoml_home))
        yield DemandForecast.inner()


def _keys_and_origin(settings):
    built = plan.lineage(settings.feature_dir)
    table = pd.read_parquet(settings.feature_dir / f"{built.sales_features_table}.parquet")
    last = table["event_timestamp"].max()
    latest = table[table["event_timestamp"] == last]
    keys = sorted(latest[["store_id", "product_id"]].itertuples(index=False, name=None))
    calendar = built.calendar
    origin = calendar.start(calendar.period(last.date()) - 1)  # the period that closed then
    return keys, origin, calendar


def test_the_service_forecasts_the_next_period_as_training_would(promoted, service):
    spec, settings, *_ = promoted
    from serving.service import Item

    keys, origin, calendar = _keys_and_origin(settings)
    next_period = calendar.start(calendar.period(origin) + 1)
    sample = keys[:8]
    items = [Item(store_id=s, product_id=p, date=next_period) for s, p in sample]
    answer = service.forecast(items=items)
    assert [f.status for f in answer.forecasts] == ["ok"] * len(sample)
    # feeds in step; only the climate needs a year of history (the daily set has seven months)
    short = [] if spec["grain"] == "week" else ["region_weather_climate"]
    assert all(f.stale == short for f in answer.forecasts), [f.stale for f in answer.forecasts]

    # the offline training row at the same origin, through Feast, scores the same
    rows = pd.DataFrame(
        {
            "store_id": [s for s, _ in sample],
            "product_id": [p for _, p in sample],
            "origin": pd.Timestamp(origin),
            "target": pd.Timestamp(next_period),
            "horizon": 1,
        }
    )
    store = open_store(settings)
    contract = _contract(settings)
    entities = dataset.entity_frame(rows, settings, calendar)
    offline = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(contract.feature_service)
    ).to_df()
    offline = offline.sort_values("row_id").reset_index(drop=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.catboost.load_model(f"models:/{settings.model_name}/1")
    expected = contract.predict(model, offline)
    served = [f.units for f in answer.forecasts]
    assert np.allclose(served, expected, rtol=1e-9, atol=1e-9)


def test_metadata_measures_freshness_against_the_periods_close(promoted, service):
    """After the forecast above: every view's newest row is in step with the origin's close,
    which at the weekly grain is the start of the next week, not the next day."""
    _, settings, *_ = promoted
    _, origin, calendar = _keys_and_origin(settings)
    freshness = service.metadata()["freshness"]
    assert freshness["origin"] == str(origin)
    assert freshness["origin_close"].startswith(str(calendar.start(calendar.period(origin) + 1)))
    states = {view: v["state"] for view, v in freshness["views"].items()}
    sales = "store_product_sales_weekly" if calendar.grain is Grain.week else "store_product_sales"
    assert states[sales] == "ok", states


def test_a_date_that_starts_no_period_is_refused_with_the_nearest_valid_dates(promoted, service):
    spec, settings, *_ = promoted
    from serving.service import Item

    keys, origin, calendar = _keys_and_origin(settings)
    wednesday = calendar.start(calendar.period(origin) + 1) + dt.timedelta(days=3)
    answer = service.forecast(
        items=[Item(store_id=keys[0][0], product_id=keys[0][1], date=wednesday)]
    )
    if spec["grain"] == "day":  # every day starts a period of its own: served
        assert [f.status for f in answer.forecasts] == ["ok"]
        return
    assert answer.status_code == 422
    body = answer.body.decode()
    before, after = calendar.nearest_starts(wednesday)
    assert "items[0].date" in body and str(before) in body and str(after) in body
    assert "Sunday" in body


def test_a_price_or_promotion_in_the_request_replaces_the_plan(promoted, service):
    _, settings, *_ = promoted
    from serving.service import Item

    keys, origin, calendar = _keys_and_origin(settings)
    target = calendar.start(calendar.period(origin) + 1)
    sample = keys[:6]
    planned = service.forecast(
        items=[Item(store_id=s, product_id=p, date=target) for s, p in sample]
    )
    on_promo = service.forecast(
        items=[
            Item(store_id=s, product_id=p, date=target, promo=True, price=1.0) for s, p in sample
        ]
    )
    # the same keys at a deep promotional price: the model sees it, and sells more
    before = np.array([f.units for f in planned.forecasts])
    after = np.array([f.units for f in on_promo.forecasts])
    assert (after != before).any()
    assert after.sum() > before.sum()


def test_batch_forecasts_cover_every_key_for_the_horizon_at_the_grain(promoted):
    _, settings, *_ = promoted
    from serving import batch, model_loader

    loaded = model_loader.load(settings, alias="production")
    frame = batch.forecast_all(settings, loaded, progress=lambda _: None)
    _keys, origin, calendar = _keys_and_origin(settings)
    horizon = loaded.contract.horizon
    assert len(frame) == len(batch.keys(settings)) * horizon
    assert frame["units"].notna().all()
    targets = sorted(set(frame["target_date"]))
    assert targets == [calendar.start(calendar.period(origin) + h) for h in range(1, horizon + 1)]


def test_batch_forecasts_are_what_the_service_answers(promoted, service, monkeypatch):
    """Batches of whole keys (several per lookup) give the units /forecast gives item by item."""
    _, settings, *_ = promoted
    from serving import batch, model_loader
    from serving.service import Item

    monkeypatch.setattr(batch, "BATCH_ITEMS", 3 * 7)  # several batches on the tiny retailer
    loaded = model_loader.load(settings, alias="production")
    frame = batch.forecast_all(settings, loaded, progress=lambda _: None)
    assert len(frame) > batch.BATCH_ITEMS
    sample = frame.sample(min(len(frame), 200), random_state=1)
    items = [
        Item(store_id=r.store_id, product_id=r.product_id, date=r.target_date)
        for r in sample.itertuples()
    ]
    served = []
    for start in range(0, len(items), 40):  # within any DEMAND_SERVE_MAX_ITEMS a test sets
        answer = service.forecast(items=items[start : start + 40])
        assert hasattr(answer, "forecasts"), answer.body
        served += [f.units for f in answer.forecasts]
    assert served == sample["units"].tolist()


def test_a_history_too_short_says_how_much_is_needed(tmp_path):
    """Twenty weeks of sales: training says how many weeks it needs and from when."""
    settings = get_settings(data_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db")
    data = generator.generate("tiny", seed=7, days=140)
    export = aggregate.aggregate(data, "week", "monday", measures=("temperature_c",))
    aggregate.write(export, settings.raw_dir)
    build_duckdb.build(settings.raw_dir, settings.feature_dir)
    with pytest.raises(dataset.TrainingDataError) as caught:
        dataset.build(None, settings)  # refused before any Feast retrieval
    message = str(caught.value)
    needed = 8 + 1 + 8 + 13 + 4
    assert f"needs at least {needed}" in message and "weeks" in message
    assert "data from " in message
    assert Calendar(Grain.week, "monday").starts_period(
        dt.date.fromisoformat(message.split("data from ")[1][:10])
    )


def test_demand_online_reads_the_grain_built(promoted, monkeypatch, capsys):
    spec, settings, *_ = promoted
    from cli.main import main

    monkeypatch.setenv("DEMAND_DATA_DIR", str(settings.data_dir))
    assert main(["online", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert ("units_lag_52" if spec["grain"] == "week" else "units_lag_7") in out
    assert "planned_price" in out
