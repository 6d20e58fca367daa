"""The feature repo through the real Feast SDK: point-in-time joins and the online store."""

import sqlite3

import numpy as np
import pandas as pd
import pytest

from demand.featurestore import open_store
from serving.lookup import OnlineLookup
from tests.leakage import KNOWN_AT
from tests.parity import assert_online_equals_offline


@pytest.fixture(scope="module")
def store(feature_env):
    return open_store(feature_env)


@pytest.fixture(scope="module")
def lookup(store, feature_env):
    return OnlineLookup.from_store(store, feature_env.feature_service)


@pytest.fixture(scope="module")
def entity_rows(feature_env):
    """Random (store, product, origin, horizon) rows over the tiny history."""
    daily = pd.read_parquet(
        feature_env.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    stores = pd.read_parquet(feature_env.raw_dir / "stores.parquet")
    rng = np.random.default_rng(0)
    rows = daily.sample(300, random_state=1).rename(columns={"event_timestamp": "origin"})
    # some origins in the middle of a day: only what was known by then may be used
    rows["origin"] += pd.to_timedelta(rng.choice([0, 3, 7, 20], len(rows)), unit="h")
    rows["horizon"] = rng.integers(1, 8, len(rows))
    target = rows["origin"].dt.tz_convert(None).dt.normalize() + pd.to_timedelta(
        rows["horizon"] - 1, unit="D"
    )
    rows["target_date"] = target.dt.strftime("%Y-%m-%d")
    rows["forecast_date"] = rows["target_date"]
    rows = rows.merge(stores[["store_id", "region_id"]], on="store_id")
    return rows.rename(columns={"origin": "event_timestamp"}).reset_index(drop=True)


@pytest.fixture(scope="module")
def training_frame(store, feature_env, entity_rows):
    service = store.get_feature_service(feature_env.feature_service)
    return store.get_historical_features(entity_df=entity_rows, features=service).to_df()


def test_every_entity_row_comes_back(training_frame, entity_rows):
    assert len(training_frame) == len(entity_rows)


def test_every_view_is_joined_for_most_rows(training_frame):
    for column in KNOWN_AT:
        assert training_frame[column].notna().mean() > 0.9, f"{column} mostly missing"


def test_sales_features_are_the_latest_known_day(training_frame):
    """A row known at midnight after day d is the one an origin later that day uses."""
    origin = pd.to_datetime(training_frame["event_timestamp"], utc=True)
    expected = origin.dt.floor("D")
    known = pd.to_datetime(training_frame["sales_known_at"], utc=True)
    assert (known == expected).all()


def test_forecast_is_the_latest_issued_before_the_origin(training_frame, feature_env):
    raw = pd.read_parquet(feature_env.raw_dir / "weather_forecast.parquet")
    raw["target_date"] = raw["valid_date"].dt.strftime("%Y-%m-%d")
    merged = training_frame.merge(
        raw[["region_id", "target_date", "issued_at"]], on=["region_id", "target_date"]
    )
    origin = pd.to_datetime(merged["event_timestamp"], utc=True)
    merged = merged[merged["issued_at"] <= origin]
    latest = merged.groupby(["region_id", "target_date", "event_timestamp"])["issued_at"].max()
    chosen = training_frame.set_index(["region_id", "target_date", "event_timestamp"])[
        "forecast_issued_at"
    ]
    chosen = pd.to_datetime(chosen, utc=True).groupby(level=[0, 1, 2]).first()
    assert (chosen.loc[latest.index] == latest).all()
    # the observed weather of the target day is never what the forecast fields hold
    assert (
        pd.to_datetime(training_frame["forecast_issued_at"], utc=True)
        < pd.to_datetime(training_frame["event_timestamp"], utc=True)
    ).all()


def test_calendar_comes_from_the_request(training_frame):
    target = pd.to_datetime(training_frame["target_date"])
    assert (training_frame["target_day_of_week"] == target.dt.dayofweek).all()
    assert (training_frame["horizon_days"] == training_frame["horizon"]).all()
    july4 = training_frame[training_frame["target_date"].str.endswith("-07-04")]
    assert (july4["target_is_holiday"] == 1).all()


def test_online_vector_equals_the_training_row_at_the_origin(store, lookup, feature_env):
    """Materialized rows, read as serving reads them, are the training rows at the origin."""
    daily = pd.read_parquet(
        feature_env.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    last = daily["event_timestamp"].max()
    latest = daily[daily["event_timestamp"] == last].drop_duplicates(["store_id", "product_id"])
    keys = list(latest[["store_id", "product_id"]].itertuples(index=False, name=None))
    keys = keys[:: max(1, len(keys) // 10)]
    origin = (last - pd.Timedelta(days=1)).date()  # known at midnight after the origin day
    horizons = [1 + i % 7 for i in range(len(keys))]
    assert_online_equals_offline(lookup, store, feature_env, keys, origin, horizons)


def test_online_store_holds_every_key(feature_env):
    expected = {
        "store_product_sales": ("store_product_daily", ["store_id", "product_id"]),
        "product_lifespan": ("product_lifespan", ["product_id"]),
        "region_weather_forecast": ("region_weather_forecast", ["region_id", "target_date"]),
        "store_attributes": ("store_attributes", ["store_id"]),
    }
    with sqlite3.connect(feature_env.feast_dir / "online_store.db") as db:
        for view, (table, keys) in expected.items():
            offline = pd.read_parquet(feature_env.feature_dir / f"{table}.parquet", columns=keys)
            online = db.execute(
                f"SELECT COUNT(DISTINCT entity_key) FROM demand_forecasting_{view}"
            ).fetchone()[0]
            assert online == len(offline.drop_duplicates()), view


def test_unknown_key_comes_back_empty(lookup):
    vectors = lookup.fetch(["S999"], ["P0000"])
    assert vectors.columns["units_mean_7"] == [None]
    assert vectors.origin == [None]
    assert vectors.event_time["store_product_sales"] == [None]


def test_incremental_materialization_is_a_no_op_when_nothing_is_new(feature_env):
    from features.publish import materialize

    before = _online_rows(feature_env)
    materialize(feature_env, incremental=True)
    assert _online_rows(feature_env) == before


def _online_rows(feature_env):
    with sqlite3.connect(feature_env.feast_dir / "online_store.db") as db:
        return db.execute("SELECT COUNT(*) FROM demand_forecasting_store_product_sales").fetchone()[
            0
        ]


def test_apply_registers_each_data_dirs_own_tables(feature_env, tmp_path):
    """A second apply in the same process, for another data dir, points at that dir."""
    import shutil

    from features.publish import apply

    other = feature_env.model_copy(update={"data_dir": tmp_path})
    shutil.copytree(feature_env.feature_dir, other.feature_dir)
    store, _ = apply(other)
    path = store.get_feature_view("store_product_sales").batch_source.path
    assert path.startswith(str(tmp_path)), path
    first = open_store(feature_env).get_feature_view("store_product_sales").batch_source.path
    assert first.startswith(str(feature_env.data_dir)), first
