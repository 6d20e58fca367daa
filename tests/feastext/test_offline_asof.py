"""The ASOF offline store returns what Feast's DuckDB store returns, row for row.

Both stores answer the same ``get_historical_features`` over the same parquet
files; the DuckDB store's rows come back in no set order, so they are put in
entity order (a ``row`` column the entity frame carries) before comparing, while
the ASOF store must keep the entity order itself.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.types import Float64, Int64

from demand.featurestore import ASOF_OFFLINE_STORE, open_store
from demand.settings import OfflineStore, Settings

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def assert_same(asof: pd.DataFrame, stock: pd.DataFrame) -> None:
    """Every column, every row: ASOF already in entity order, the stock rows sorted into it."""
    assert list(asof["row"]) == list(range(len(asof))), "entity order not kept"
    stock = stock.sort_values("row", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(asof.reset_index(drop=True), stock, check_exact=False, rtol=1e-12)


# ---------------------------------------------------------------- the platform's service


@pytest.fixture(scope="module")
def platform_stores(feature_env):
    stock = feature_env.model_copy(update={"offline_store": OfflineStore.duckdb})
    return open_store(stock), open_store(feature_env)


def test_asof_is_the_default_and_duckdb_selectable(platform_stores):
    assert Settings.model_fields["offline_store"].default is OfflineStore.asof
    stock, asof = platform_stores
    assert stock.config.offline_store.type == "duckdb"
    assert asof.config.offline_store.type == ASOF_OFFLINE_STORE


def test_the_memory_limit_bounds_the_joins(feature_env):
    import ibis

    connection = ibis.get_backend().con
    (before,) = connection.execute("SELECT current_setting('memory_limit')").fetchone()
    bounded = open_store(feature_env.model_copy(update={"duckdb_memory_limit": "3GB"}))
    assert bounded.config.offline_store.memory_limit == "3GB"
    rows = pd.DataFrame({"product_id": ["none"], "event_timestamp": [T0]})
    try:
        bounded.get_historical_features(
            entity_df=rows, features=["product_attributes:list_price"]
        ).to_df()
        (limit,) = connection.execute("SELECT current_setting('memory_limit')").fetchone()
        assert limit in ("2.7 GiB", "2.8 GiB", "3.0 GB")  # DuckDB prints it in its units
    finally:
        connection.execute(f"SET memory_limit = '{before}'")


def test_feature_service_on_the_tiny_retailer_is_identical(platform_stores, feature_env):
    daily = pd.read_parquet(
        feature_env.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    stores = pd.read_parquet(feature_env.raw_dir / "stores.parquet")
    rows = daily.sample(400, random_state=3)
    # mid-day origins (only what was known then), and some rows twice
    rows["event_timestamp"] += pd.to_timedelta([0, 5, 13, 23] * 100, unit="h")
    rows = pd.concat([rows, rows.iloc[:25]]).sample(frac=1, random_state=4)
    rows["horizon"] = [1, 2, 3, 4, 5, 6, 7] * 60 + [1] * 5
    target = rows["event_timestamp"].dt.tz_convert(None).dt.normalize() + pd.to_timedelta(
        rows["horizon"] - 1, unit="D"
    )
    rows["target_date"] = target.dt.strftime("%Y-%m-%d")
    rows["forecast_date"] = rows["target_date"]
    rows = rows.merge(stores[["store_id", "region_id"]], on="store_id", how="left")
    rows["row"] = range(len(rows))

    stock_store, asof_store = platform_stores
    service = stock_store.get_feature_service(feature_env.feature_service)
    for full in (False, True):
        stock = stock_store.get_historical_features(
            entity_df=rows.copy(), features=service, full_feature_names=full
        ).to_df()
        asof = asof_store.get_historical_features(
            entity_df=rows.copy(), features=service, full_feature_names=full
        ).to_df()
        assert len(asof) == len(rows)
        assert_same(asof, stock)
        assert asof.drop(columns=list(rows.columns)).notna().to_numpy().mean() > 0.5


# ---------------------------------------------------------------- hand-made cases


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A repo of two views with different join keys: a product view with a created
    timestamp and a 2-day TTL, and a region view without either."""
    root = tmp_path_factory.mktemp("asof")
    product_rows = pd.DataFrame(
        {
            "product_id": ["p1", "p1", "p1", "p1", "p1", "p2", "p2", "p3"],
            "event_timestamp": [day(1), day(3), day(3), day(3), day(5), day(2), day(2), day(9)],
            # a tie at day 3 broken by the created time (a null one ranks last), and at
            # day 2 a null created time against a set one
            "created": [day(1), day(4), pd.NaT, day(3.5), day(5), pd.NaT, day(2), day(9)],
            "units": [1.0, 30.0, 31.0, 32.0, 5.0, 20.0, 21.0, 9.0],
            "orders": [1, 3, 4, 5, 6, 2, 3, 9],
        }
    )
    product_rows["created"] = product_rows["created"].astype("datetime64[us, UTC]")
    product_rows.to_parquet(root / "product.parquet")
    region_rows = pd.DataFrame(
        {
            "region_id": ["r1", "r1", "r2"],
            "event_timestamp": [day(0), day(4), day(1)],
            "temperature": [1.5, 4.25, -2.0],
        }
    )
    region_rows.to_parquet(root / "region.parquet")

    product = Entity(name="product", join_keys=["product_id"])
    region = Entity(name="region", join_keys=["region_id"])
    product_view = FeatureView(
        name="product_stats",
        entities=[product],
        ttl=timedelta(days=2),
        schema=[Field(name="units", dtype=Float64), Field(name="orders", dtype=Int64)],
        source=FileSource(
            path=str(root / "product.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
    )
    region_view = FeatureView(
        name="region_weather",
        entities=[region],
        ttl=timedelta(0),
        schema=[Field(name="temperature", dtype=Float64)],
        source=FileSource(path=str(root / "region.parquet"), timestamp_field="event_timestamp"),
    )

    def store(offline: str) -> FeatureStore:
        config = RepoConfig(
            project="asof_test",
            provider="local",
            registry=str(root / "registry.db"),
            offline_store={"type": offline},
            online_store={"type": "sqlite", "path": str(root / "online.db")},
            entity_key_serialization_version=3,
        )
        config.repo_path = root
        return FeatureStore(config=config)

    stock = store("duckdb")
    stock.apply([product, region, product_view, region_view])
    return stock, store(ASOF_OFFLINE_STORE)


REFS = ["product_stats:units", "product_stats:orders", "region_weather:temperature"]


def retrieve(toy, entities: list[tuple], full_feature_names: bool = False):
    frame = pd.DataFrame(entities, columns=["product_id", "region_id", "event_timestamp"])
    frame["row"] = range(len(frame))
    stock_store, asof_store = toy
    results = [
        s.get_historical_features(
            entity_df=frame.copy(), features=REFS, full_feature_names=full_feature_names
        ).to_df()
        for s in (stock_store, asof_store)
    ]
    assert_same(results[1], results[0])
    return results[1]


def test_ttl_boundary_is_inclusive(toy):
    # p1's day-1 row (the newest before day 3) lives until day 3 inclusive
    got = retrieve(
        toy,
        [
            ("p1", "r1", day(3) - pd.Timedelta(microseconds=1)),
            ("p1", "r1", day(1) + pd.Timedelta(days=2)),  # day 3 itself: the tie rows win
            ("p2", "r1", day(4)),  # exactly ttl after day 2: kept
            ("p2", "r1", day(4) + pd.Timedelta(microseconds=1)),  # one µs later: expired
            ("p1", "r1", day(8)),  # newest row day 5, 3 days old: expired, not the older ones
        ],
    )
    assert list(got["units"].isna()) == [False, False, False, True, True]
    assert got["units"][0] == 1.0


def test_created_timestamp_ties_and_nulls(toy):
    got = retrieve(toy, [("p1", "r1", day(3)), ("p2", "r2", day(2)), ("p1", "r2", day(4.5))])
    # day 3: created day 4 beats 3.5 and null; day 2: a set created time beats a null one
    assert list(got["units"]) == [30.0, 21.0, 30.0]
    assert list(got["orders"]) == [3, 3, 3]


def test_entity_before_any_row_and_unknown_keys(toy):
    got = retrieve(
        toy,
        [
            ("p3", "r1", day(8)),
            ("p1", "r2", day(0.5)),
            ("nope", "r9", day(5)),
            ("p3", "r1", day(9)),
        ],
    )
    assert got["units"].isna().tolist() == [True, True, True, False]
    assert got["temperature"].isna().tolist() == [False, True, True, False]


def test_duplicate_rows_different_join_keys_and_order(toy):
    entities = [
        ("p1", "r1", day(5)),
        ("p2", "r2", day(3)),
        ("p1", "r1", day(5)),
        ("p1", "r2", day(1)),
        ("p2", "r1", day(2.5)),
        ("p1", "r1", day(5)),
        ("p1", "r2", day(5)),  # p1's day-5 row again, beside another region's weather
    ]
    got = retrieve(toy, entities)
    assert len(got) == 7
    assert list(got["temperature"]) == [4.25, -2.0, 4.25, -2.0, 1.5, 4.25, -2.0]
    assert list(got["units"]) == [5.0, 21.0, 5.0, 1.0, 21.0, 5.0, 5.0]


def test_rows_outside_the_entity_times_are_left_out_without_changing_a_value(toy):
    """The join reads only view rows up to the last entity time and not expired at the
    first: each entity row retrieved alone (the narrowest span, its bounds on its own
    time) gets what it gets among rows of other times, and what Feast's store gives."""
    entities = [
        ("p2", "r1", day(4)),  # day 2's rows are exactly a TTL old: kept
        ("p1", "r1", day(5)),  # a row at the entity time itself
        ("p1", "r2", day(3)),  # the tie at day 3, broken by the created time
        ("p1", "r1", day(8)),  # the newest row expired: nothing
        ("p2", "r2", day(4) + pd.Timedelta(microseconds=1)),  # a µs after the TTL: nothing
    ]
    together = retrieve(toy, entities)
    columns = ["units", "orders", "temperature"]
    for i, entity in enumerate(entities):
        alone = retrieve(toy, [entity])
        pd.testing.assert_series_equal(
            alone[columns].iloc[0], together[columns].iloc[i], check_names=False
        )
    assert together["units"].tolist()[:3] == [21.0, 5.0, 30.0]
    assert together["units"].isna().tolist() == [False, False, False, True, True]


def test_full_feature_names(toy):
    got = retrieve(toy, [("p1", "r1", day(5)), ("p2", "r2", day(3))], full_feature_names=True)
    assert {"product_stats__units", "product_stats__orders", "region_weather__temperature"} <= set(
        got.columns
    )


def test_a_saved_dataset_holds_the_rows(toy, tmp_path):
    from feast.infra.offline_stores.file_source import SavedDatasetFileStorage

    frame = pd.DataFrame(
        {"product_id": ["p1", "p2"], "region_id": ["r1", "r2"], "event_timestamp": [day(5), day(3)]}
    )
    _, asof_store = toy
    job = asof_store.get_historical_features(entity_df=frame, features=REFS)
    expected = job.to_df()
    path = tmp_path / "saved.parquet"
    asof_store.create_saved_dataset(
        from_=job, name="asof_saved", storage=SavedDatasetFileStorage(path=str(path))
    )
    saved = pd.read_parquet(path)
    assert list(saved["units"]) == list(expected["units"]) == [5.0, 21.0]
    assert list(saved["temperature"]) == [4.25, -2.0]
