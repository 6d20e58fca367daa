"""Training sets and materialization through Feast's Spark offline store (DEMAND_ENGINE=spark).

The reference is the DuckDB path (the ASOF store, the platform's materializer reading
DuckDB): on the tiny retailer the Spark store must give the same training set, every row,
column and dtype, and the online store must hold the same bytes. The hand-made cases are
the ones Feast's Spark join got wrong or could: a null created time, keys that concatenate
alike, TTL boundaries to the microsecond, duplicate entity rows and entity order.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.types import Float64, Int64, String

from demand.contract import TAG_PREFIX, FeatureContract
from demand.featurestore import ASOF_OFFLINE_STORE, SPARK_OFFLINE_STORE, open_store
from demand.settings import Engine
from features import publish
from tests.spark.conftest import SPARK
from training import dataset
from training import train as training

pytestmark = pytest.mark.spark

T0 = pd.Timestamp("2026-01-01", tz="UTC")
MASTER = SPARK.spark_master


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def on_spark(settings):
    return settings.model_copy(update={"engine": Engine.spark, "spark_master": MASTER})


def test_the_training_set_on_spark_is_the_duckdb_one(feature_env, spark):
    # a sample of the tiny retailer's rows (every view, every horizon): Spark's cost is per
    # query stage here, not per row
    settings = feature_env.model_copy(update={"train_max_rows": 3000})
    duck = dataset.build(open_store(settings), settings, progress=lambda _: None)
    store = open_store(on_spark(settings))
    assert store.config.offline_store.type == SPARK_OFFLINE_STORE
    got = dataset.build(store, on_spark(settings), progress=lambda _: None)

    assert len(duck.frame) > 1000
    assert list(got.frame.columns) == list(duck.frame.columns)
    pd.testing.assert_frame_equal(got.frame, duck.frame, check_exact=False, rtol=1e-9)
    assert got.digest == duck.digest
    assert (got.features, got.categorical, got.feature_views) == (
        duck.features,
        duck.categorical,
        duck.feature_views,
    )

    # the model's contract says where its rows came from; older versions read as DuckDB
    split = training.time_split(got.frame, settings, got.schedule)
    contract = training.feature_contract("p", on_spark(settings), got, split, "CPU")
    assert contract.engine == "spark"
    tags = contract.to_tags()
    assert FeatureContract.from_tags(tags).engine == "spark"
    del tags[TAG_PREFIX + "engine"]
    assert FeatureContract.from_tags(tags).engine == "duckdb"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A product view with a created time and a 2-day TTL, a region view with neither, and a
    (product, region) view whose keys concatenate alike ("p1" + "2r" and "p12" + "r")."""
    root = tmp_path_factory.mktemp("spark_toy")
    products = pd.DataFrame(
        {
            "product_id": ["p1", "p1", "p1", "p1", "p1", "p2", "p2", "p3", "p4"],
            "event_timestamp": [day(n) for n in (1, 3, 3, 3, 5, 2, 2, 9, 1)],
            # ties at day 3 and day 2 broken by the created time; p4's only row has none
            "created": [day(1), day(4), pd.NaT, day(3.5), day(5), pd.NaT, day(2), day(9), pd.NaT],
            "units": [1.0, 30.0, 31.0, 32.0, 5.0, 20.0, 21.0, 9.0, 44.0],
            "orders": [1, 3, 4, 5, 6, 2, 3, 9, 4],
        }
    )
    for column in ("event_timestamp", "created"):
        products[column] = products[column].astype("datetime64[us, UTC]")
    products.to_parquet(root / "product.parquet")
    regions = pd.DataFrame(
        {
            "region_id": ["r1", "r1", "r2", "2r", "r"],
            "event_timestamp": pd.Series([day(0), day(4), day(1), day(0), day(0)]).astype(
                "datetime64[us, UTC]"
            ),
            "temperature": [1.5, 4.25, -2.0, 7.0, 8.0],
        }
    )
    regions.to_parquet(root / "region.parquet")
    pairs = pd.DataFrame(
        {
            "product_id": ["p1", "p12"],
            "region_id": ["2r", "r"],
            "event_timestamp": pd.Series([day(0), day(0)]).astype("datetime64[us, UTC]"),
            "label": ["p1|2r", "p12|r"],
        }
    )
    pairs.to_parquet(root / "pair.parquet")

    product = Entity(name="product", join_keys=["product_id"])
    region = Entity(name="region", join_keys=["region_id"])

    def source(name: str, **created) -> FileSource:
        return FileSource(
            path=str(root / f"{name}.parquet"), timestamp_field="event_timestamp", **created
        )

    views = [
        FeatureView(
            name="product_stats",
            entities=[product],
            ttl=timedelta(days=2),
            schema=[Field(name="units", dtype=Float64), Field(name="orders", dtype=Int64)],
            source=source("product", created_timestamp_column="created"),
        ),
        FeatureView(
            name="region_weather",
            entities=[region],
            ttl=timedelta(0),
            schema=[Field(name="temperature", dtype=Float64)],
            source=source("region"),
        ),
        FeatureView(
            name="pair_labels",
            entities=[product, region],
            ttl=timedelta(0),
            schema=[Field(name="label", dtype=String)],
            source=source("pair"),
        ),
    ]

    def store(offline: dict) -> FeatureStore:
        config = RepoConfig(
            project="spark_toy",
            provider="local",
            registry=str(root / "registry.db"),
            offline_store=offline,
            online_store={"type": "sqlite", "path": str(root / "online.db")},
            entity_key_serialization_version=3,
        )
        config.repo_path = root
        return FeatureStore(config=config)

    asof = store({"type": ASOF_OFFLINE_STORE})
    asof.apply([product, region, *views])
    return asof, store({"type": SPARK_OFFLINE_STORE, "master": MASTER})


def test_hand_made_cases_match_duckdb(toy, spark):
    entities = [
        ("p1", "r1", day(3) - pd.Timedelta(microseconds=1)),  # the day-1 row, 1 µs inside TTL
        ("p1", "r1", day(3)),  # the day-3 tie: created day 4 beats 3.5 and a null
        ("p2", "r1", day(4)),  # exactly the TTL after day 2: kept (created day 2 beats null)
        ("p2", "r1", day(4) + pd.Timedelta(microseconds=1)),  # one µs later: expired
        ("p1", "r1", day(8)),  # newest row 3 days old: expired, not an older one
        ("p2", "r2", day(2)),  # a set created time beats a null one
        ("nope", "r9", day(5)),  # unknown keys
        ("p1", "r2", day(0.5)),  # before any row
        ("p4", "r1", day(2)),  # the only row of its time has a null created time
        ("p1", "2r", day(5)),  # keys that concatenate alike: each its own row
        ("p12", "r", day(5)),
        ("p1", "r1", day(5)),  # duplicates
        ("p1", "r1", day(5)),
    ]
    frame = pd.DataFrame(entities, columns=["product_id", "region_id", "event_timestamp"])
    frame["row"] = range(len(frame))
    refs = [
        "product_stats:units",
        "product_stats:orders",
        "region_weather:temperature",
        "pair_labels:label",
    ]
    asof, spark_store = toy
    expected = asof.get_historical_features(entity_df=frame.copy(), features=refs).to_df()
    got = spark_store.get_historical_features(entity_df=frame, features=refs).to_df()

    assert list(frame.columns) == ["product_id", "region_id", "event_timestamp", "row"]
    pd.testing.assert_frame_equal(got, expected)  # entity order kept, same dtypes
    assert list(got["units"].fillna(-1)) == [1, 30, 21, -1, -1, 21, -1, -1, 44, 5, -1, 5, 5]
    assert list(got["label"].iloc[9:11]) == ["p1|2r", "p12|r"]


def _online_rows(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as db:
        tables = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}


def test_materializing_from_spark_writes_the_duckdb_bytes(feature_env, spark, tmp_path):
    """The online store after a Spark materialization holds what the DuckDB one wrote."""
    shutil.copytree(feature_env.data_dir, tmp_path / "data")
    settings = on_spark(feature_env.model_copy(update={"data_dir": tmp_path / "data"}))
    online = settings.feast_dir / "online_store.db"
    with sqlite3.connect(online) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            db.execute(f'DELETE FROM "{table}"')
    assert not any(_online_rows(online).values())

    publish.materialize(settings)

    expected = _online_rows(feature_env.feast_dir / "online_store.db")
    assert sum(map(len, expected.values())) > 1000
    assert _online_rows(online) == expected


def _redis_hashes(project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash of the project's Redis keys, by entity key (the key less the project)."""
    import redis

    from tests.servers import REDIS

    host, port = REDIS.split(":")
    client = redis.Redis(host=host, port=int(port))
    suffix = project.encode()
    return {
        key[: -len(suffix)]: client.hgetall(key)
        for key in client.scan_iter(count=5000)
        if key.endswith(suffix)
    }


@pytest.mark.redis
@pytest.mark.postgres
def test_materializing_from_spark_writes_the_duckdb_bytes_to_redis(feature_env, spark):
    from tests.servers import team_feast_project

    with team_feast_project(feature_env) as duck:
        expected = _redis_hashes(duck.feast_project)
    with team_feast_project(on_spark(feature_env)) as team:
        assert open_store(team, materializing=True).config.offline_store.type == (
            SPARK_OFFLINE_STORE
        )
        got = _redis_hashes(team.feast_project)
    assert len(expected) > 100
    assert got == expected


def test_a_million_entity_rows_make_no_large_task(toy, spark, capfd, tmp_path, monkeypatch):
    """The entity frame reaches Spark as a parquet file the executors read, not inside the
    query's tasks: a million rows, and Spark warns of no large task (its warning, logged at
    WARN by the JVM: "contains a task of very large size")."""
    _, spark_store = toy
    monkeypatch.setattr(spark_store.config.offline_store, "staging_dir", str(tmp_path))
    n = 1_000_000
    frame = pd.DataFrame(
        {
            "product_id": ["p1", "p2", "p3", "p4"] * (n // 4),
            "region_id": "r1",
            "event_timestamp": (T0 + pd.to_timedelta(pd.RangeIndex(n) % 10, unit="D")),
        }
    )
    spark.sparkContext.setLogLevel("WARN")
    try:
        capfd.readouterr()
        got = spark_store.get_historical_features(entity_df=frame, features=["product_stats:units"])
        units = got.to_df()["units"]
        log = capfd.readouterr().err
    finally:
        spark.sparkContext.setLogLevel("FATAL")

    assert len(units) == n and units.notna().sum() > 0
    assert "very large size" not in log, log[-2000:]
    assert list(tmp_path.iterdir()) == []  # the staged frame is removed once read
