"""Parity under skew: feeds out of step with the orders, online against the training row.

One tiny retailer whose feeds disagree on how far they reach, region by region
(generated one day past the tiny history, then cut back the way late or early
feeds look after a nightly load):

* the orders end on day D (the origin);
* region A: observed weather and forecasts run one day ahead (day D+1 observed,
  forecasts issued on D+1): the store's newest rows are newer than the origin;
* region B: observed weather stopped three days before the orders (past its 2-day
  TTL), forecasts in step except one issued on D+1 for D+3 (after the origin).

Built, applied and materialized like any data dir: materialization runs to the
close of the newest origin, so region A's rows from D+1 stay out of the online
store until the orders catch up. For the origin D, every item is compared with the
offline training row at D and must equal it: a stalled feed is null on both sides
(and named in ``stale``). The last test then loads everything, the newest row of
every table (what a hand-run load could do), and shows the lookup's own check keeps
the newer rows out: null and named in ``stale``, never the target day's weather.
"""

from __future__ import annotations

import datetime as dt

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from demand.contract import FeatureContract
from demand.featurestore import open_store
from features import pipeline, publish
from rawdata import raw
from serving.lookup import OnlineLookup
from serving.service import DemandForecast, Item
from synthetic import generator
from tests.leakage import close_of
from tests.parity import assert_online_equals_offline, expected_online, offline_rows

OBSERVED, FORECAST = "region_weather_observed", "region_weather_forecast"
SALES = ("store_product_sales", "store_product_replenishment")
LATE_TARGET = 3  # region B's forecast issued after the origin is for D+3


@pytest.fixture(scope="module")
def skewed(serving_env, tmp_path_factory):
    """Settings over the skewed data dir (the serving tests' model), D, and A's and B's stores."""
    data = generator.generate("tiny", seed=7, extra_days=1)
    tables = data.tables()
    day = tables["orders"]["ordered_at"].max().tz_convert(None).normalize() - pd.Timedelta(days=1)
    close = close_of(day)  # of the origin D
    region_a, region_b = sorted(tables["stores"]["region_id"].unique())[:2]
    orders = tables["orders"]
    tables["orders"] = orders[orders["ordered_at"] < close].reset_index(drop=True)
    observed = tables["weather_observed"]
    stalled = (observed["region_id"] == region_b) & (observed["date"] > day - pd.Timedelta(days=3))
    tables["weather_observed"] = observed[~stalled].reset_index(drop=True)
    forecast = tables["weather_forecast"]
    late = (forecast["region_id"] == region_b) & (forecast["issued_at"] >= close)
    reissued = forecast["valid_date"] == day + pd.Timedelta(days=LATE_TARGET)
    tables["weather_forecast"] = forecast[~late | reissued].reset_index(drop=True)

    settings = serving_env.model_copy(update={"data_dir": tmp_path_factory.mktemp("skewed")})
    raw.write_raw(tables, settings.raw_dir)
    pipeline.run(settings, progress=lambda _: None, regenerate=False)
    stores = tables["stores"]
    in_region = {
        r: sorted(stores.loc[stores["region_id"] == r, "store_id"]) for r in (region_a, region_b)
    }
    return settings, day.date(), in_region[region_a], in_region[region_b]


@pytest.fixture(scope="module")
def cases(skewed):
    """Every key of the origin D, each for one target day, and the views each must name stale."""
    settings, origin, stores_a, stores_b = skewed
    daily = pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    assert daily["event_timestamp"].max() == close_of(origin)  # the orders end on D
    latest = daily[daily["event_timestamp"] == close_of(origin)]
    keys = sorted(set(latest[["store_id", "product_id"]].itertuples(index=False, name=None)))
    keys = keys[:: max(1, len(keys) // 28)]
    horizons = [1 + i % 7 for i in range(len(keys))]
    # region A's rows ahead are not loaded; region B's observed weather stalled past its TTL
    stale = [[] if store in stores_a else [OBSERVED] for store, _ in keys]
    assert {s for s, _ in keys} & set(stores_a) and {s for s, _ in keys} & set(stores_b)
    assert LATE_TARGET in [h for (s, _), h in zip(keys, horizons, strict=True) if s in stores_b]
    return keys, horizons, stale


def _stale_once_everything_is_loaded(keys, horizons, stores_a) -> list[list[str]]:
    stale = []
    for (store, _), h in zip(keys, horizons, strict=True):
        if store in stores_a:
            stale.append([OBSERVED, FORECAST])  # ahead: newer than the origin
        elif h == LATE_TARGET:
            stale.append([OBSERVED, FORECAST])  # stalled past its TTL; issued after the origin
        else:
            stale.append([OBSERVED])  # stalled past its TTL
    return stale


@pytest.fixture(scope="module")
def store(skewed):
    return open_store(skewed[0])


def test_online_equals_offline_with_feeds_out_of_step(skewed, cases, store):
    settings, origin, stores_a, _ = skewed
    keys, horizons, stale = cases
    lookup = OnlineLookup.from_store(store, settings.feature_service)
    offline = assert_online_equals_offline(lookup, store, settings, keys, origin, horizons, stale)
    # the stalled feed: training has nulls there too, so online = offline outright
    in_b = [i for i, (s, _) in enumerate(keys) if s not in stores_a]
    assert offline.loc[in_b, "temperature_c"].isna().all()
    # the feeds ahead: training used an older row, which the online store no longer holds
    in_a = [i for i, (s, _) in enumerate(keys) if s in stores_a]
    assert offline.loc[in_a, "temperature_c"].notna().all()
    assert offline.loc[in_a, "forecast_temperature_c"].notna().all()
    late = [i for i in in_b if horizons[i] == LATE_TARGET]
    assert offline.loc[late, "forecast_temperature_c"].notna().all()


def test_the_store_holds_no_row_newer_than_the_origin(skewed, cases, store):
    """Materialization stops at the origin's close, whichever feed runs ahead."""
    settings, origin, _, _ = skewed
    keys, horizons, _ = cases
    lookup = OnlineLookup.from_store(store, settings.feature_service)
    targets = [origin + dt.timedelta(days=h) for h in horizons]
    vectors = lookup.fetch([s for s, _ in keys], [p for _, p in keys], targets)
    close = dt.datetime.combine(origin + dt.timedelta(days=1), dt.time(), dt.UTC)
    for view, times in vectors.event_time.items():
        assert all(t is None or t <= close for t in times), view
    assert vectors.newest[OBSERVED] == close


@pytest.fixture(scope="module")
def skewed_service(skewed, monkeypatch_module):
    settings = skewed[0]
    monkeypatch_module.setenv("DEMAND_DATA_DIR", str(settings.data_dir))
    monkeypatch_module.setenv("DEMAND_MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch_module.setenv("DEMAND_SERVE_RELOAD_SECONDS", "0")
    monkeypatch_module.setenv("BENTOML_HOME", str(settings.bentoml_home))
    return DemandForecast.inner()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_service_names_stale_views_and_scores_the_training_row(
    skewed, cases, store, skewed_service
):
    """Through the service: ``stale`` per item, units = the model on the training row as
    serving can know it (the rows of stale views null)."""
    settings, origin, _, _ = skewed
    keys, horizons, stale = cases
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=h))
        for (s, p), h in zip(keys, horizons, strict=True)
    ]
    answer = skewed_service.forecast(items=items)
    assert [f.status for f in answer.forecasts] == ["ok"] * len(items)
    assert [sorted(f.stale) for f in answer.forecasts] == [sorted(v) for v in stale]

    lookup = OnlineLookup.from_store(store, settings.feature_service)
    expected = expected_online(lookup, offline_rows(store, settings, keys, origin, horizons), stale)
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.catboost.load_model(f"models:/{settings.model_name}/1")
    tags = (
        MlflowClient(settings.tracking_uri, settings.tracking_uri)
        .get_model_version(settings.model_name, "1")
        .tags
    )
    units = FeatureContract.from_tags(tags).predict(model, expected)
    assert np.allclose([f.units for f in answer.forecasts], units, rtol=1e-9, atol=1e-9)


def test_metadata_and_metrics_show_each_views_newest_row_against_the_origin(
    skewed, cases, skewed_service, client
):
    """/metadata of the skewed service; /metrics of the process (its gauges are per process)."""
    origin = skewed[1]
    keys, horizons, _ = cases
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=h))
        for (s, p), h in zip(keys, horizons, strict=True)
    ]
    skewed_service.forecast(items=items)
    fresh = skewed_service.metadata()["freshness"]
    metrics = client.get("/metrics").text
    assert fresh["origin"] == origin.isoformat()
    views = fresh["views"]
    assert views[OBSERVED]["state"] == "ok" and views[OBSERVED]["age_hours"] == 0
    assert views[FORECAST]["state"] == "ok"  # issued on D, before D closed
    assert views["store_product_sales"] == {
        "ttl_hours": 48.0,
        "newest_event_time": f"{origin + dt.timedelta(days=1)}T00:00:00+00:00",
        "age_hours": 0.0,
        "state": "ok",
    }
    assert views["store_attributes"]["ttl_hours"] is None  # never expires
    assert 'demand_feature_age_seconds{view="region_weather_observed"} 0.0' in metrics
    assert 'demand_stale_items_total{view="region_weather_observed"}' in metrics


def test_a_day_not_closed_yet_is_not_an_origin(skewed, cases, store):
    """The export cut at noon of D: day D is open, the origin is D-1, and D's rows are too new.

    The online store holds only D's rows, so the purchase views are null (and stale), and
    so are the forecasts (issued on D, after D-1 closed); every other view is the training
    row at D-1. Region B's observed weather (its last row D-3, known at the start of D-2)
    is exactly at the edge of its 2-day TTL at D-1's close: usable, offline and online.
    """
    settings, day, stores_a, _ = skewed
    keys, horizons, _ = cases
    noon = dt.datetime.combine(day, dt.time(12), dt.UTC)
    lookup = OnlineLookup.from_store(store, settings.feature_service, closed_day_lag_hours=0)
    lookup.clock = lambda: noon
    origin = day - dt.timedelta(days=1)
    stale = [[*SALES, OBSERVED, FORECAST] if s in stores_a else [*SALES, FORECAST] for s, _ in keys]
    offline = assert_online_equals_offline(lookup, store, settings, keys, origin, horizons, stale)
    assert offline["units_mean_28"].notna().all()  # what the store no longer holds

    # a lag: D is closed one hour after midnight, not before
    lookup = OnlineLookup.from_store(store, settings.feature_service, closed_day_lag_hours=1)
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    for now, expected in ((midnight + dt.timedelta(minutes=59), origin), (midnight, origin)):
        lookup.clock = lambda now=now: now
        assert lookup.fetch([keys[0][0]], [keys[0][1]]).origin == [expected]
    lookup.clock = lambda: midnight + dt.timedelta(hours=1)
    assert lookup.fetch([keys[0][0]], [keys[0][1]]).origin == [day]


def test_rows_newer_than_the_origin_are_never_served(skewed, cases, store, skewed_service, client):
    """Runs last: load the newest row of every table, past the origin (a hand-run load).

    The online store then holds region A's weather of D+1 and region B's forecast issued
    after the origin; the lookup's check keeps them out (null, named in ``stale``), where
    without it the model would read the target day's own observed weather as yesterday's.
    """
    settings, origin, stores_a, _ = skewed
    keys, horizons, _ = cases
    everything = publish.latest_feature_time(settings) + dt.timedelta(seconds=1)
    publish.materialize(settings, end=everything)
    stale = _stale_once_everything_is_loaded(keys, horizons, stores_a)
    lookup = OnlineLookup.from_store(store, settings.feature_service)
    assert_online_equals_offline(lookup, store, settings, keys, origin, horizons, stale)

    targets = [origin + dt.timedelta(days=h) for h in horizons]
    vectors = lookup.fetch([s for s, _ in keys], [p for _, p in keys], targets)
    close = dt.datetime.combine(origin + dt.timedelta(days=1), dt.time(), dt.UTC)
    in_a = [i for i, (s, _) in enumerate(keys) if s in stores_a]
    assert all(vectors.event_time[OBSERVED][i] > close for i in in_a)
    assert all(vectors.event_time[FORECAST][i] > close for i in in_a)
    assert all(vectors.columns["temperature_c"][i] is None for i in in_a)

    items = [
        Item(store_id=s, product_id=p, date=t) for (s, p), t in zip(keys, targets, strict=True)
    ]
    answer = skewed_service.forecast(items=items)
    assert [sorted(f.stale) for f in answer.forecasts] == [sorted(v) for v in stale]
    views = skewed_service.metadata()["freshness"]["views"]
    assert views[OBSERVED]["state"] == "ahead" and views[OBSERVED]["age_hours"] == -24
    assert views[FORECAST]["state"] == "ahead"  # issued on D+1
    metrics = client.get("/metrics").text
    assert 'demand_feature_age_seconds{view="region_weather_observed"} -86400.0' in metrics
