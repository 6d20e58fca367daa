"""The platform's materializer stores the bytes stock Feast stores, key by key.

Each test materializes the same offline rows twice, with Feast's own engine and
stores into one online store and with the platform's (feastext/materialization.py)
into another, and compares everything stored: SQLite rows (entity_key, feature_name,
value, value_text, event_ts, created_ts), Redis hashes field by field. The toy views
carry every scalar type Feast converts (double, float, int64, int32, string, bool,
timestamp), nulls in each, one and two join keys, a string and an integer key; the
tiny retailer carries the repo's own views.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

from demand.featurestore import PLATFORM_ENGINE, PLATFORM_ONLINE_STORES, open_store
from demand.settings import Materializer
from features import publish
from tests.servers import REDIS, require_servers, team_feast_project

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


# -- reading back what a store holds ---------------------------------------------------------


def sqlite_rows(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: sorted(
                db.execute(
                    "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
                    f'FROM "{t}"'
                ).fetchall()
            )
            for t in tables
        }


def redis_hashes(project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash of the Feast project, by entity key (the key less its project suffix)."""
    import redis

    host, port = REDIS.split(":")
    client = redis.Redis(host=host, port=int(port))
    suffix = project.encode()
    return {
        key[: -len(suffix)]: client.hgetall(key)
        for key in client.scan_iter(match=b"*" + suffix, count=10_000)
    }


# -- toy views: every value type, nulls, one and two join keys -------------------------------

store = Entity(name="store", join_keys=["store_id"], value_type=ValueType.STRING)
product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)
shelf = Entity(name="shelf", join_keys=["shelf_no"], value_type=ValueType.INT64)


def typed_rows(rng: np.random.Generator, when: list[pd.Timestamp], n_keys: int) -> pd.DataFrame:
    """Rows of (store, product) keys at the given times, every type with some nulls."""
    n = n_keys * len(when)

    def holes(values, dtype):
        series = pd.Series(values, dtype=dtype)
        series[rng.random(n) < 0.15] = None
        return series

    return pd.DataFrame(
        {
            "store_id": [f"S{k % 7}" for k in range(n_keys)] * len(when),
            "product_id": [f"P{k // 7}é" for k in range(n_keys)] * len(when),
            "shelf_no": (np.arange(n) % n_keys - 3).astype(np.int64),
            "units": holes(rng.normal(0, 1e3, n), "float64"),
            "share": holes(rng.random(n) * 10, "float64"),
            "orders": holes(rng.integers(-(2**40), 2**40, n), "Int64"),
            "lead": holes(rng.integers(-(2**20), 2**20, n), "Int32"),
            "label": holes([["", "a", "ümlaut", "x" * 300][i % 4] for i in range(n)], "string"),
            "on_promo": holes(rng.random(n) < 0.5, "boolean"),
            "seen_at": holes(
                pd.Timestamp("2025-06-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),
                "datetime64[us, UTC]",
            ),
            "event_timestamp": pd.DatetimeIndex(when).repeat(n_keys).as_unit("us"),
        }
    )


def toy_views(path: str):
    source = FileSource(name="typed", path=path, timestamp_field="event_timestamp")
    typed = FeatureView(
        name="typed",
        entities=[store, product],
        ttl=timedelta(days=30),
        schema=[
            Field(name="units", dtype=Float64),
            Field(name="share", dtype=Float32),
            Field(name="orders", dtype=Int64),
            Field(name="lead", dtype=Int32),
            Field(name="label", dtype=String),
            Field(name="on_promo", dtype=Bool),
            Field(name="seen_at", dtype=UnixTimestamp),
        ],
        source=source,
    )
    by_product = FeatureView(
        name="by_product",
        entities=[product],
        ttl=timedelta(0),
        schema=[Field(name="units", dtype=Float64), Field(name="label", dtype=String)],
        source=source,
    )
    by_shelf = FeatureView(
        name="by_shelf",
        entities=[shelf],
        ttl=timedelta(0),
        schema=[Field(name="orders", dtype=Int64), Field(name="on_promo", dtype=Bool)],
        source=source,
    )
    return [store, product, shelf, typed, by_product, by_shelf]


def toy_store(
    root, online: dict, platform: bool, project: str, batch_size: int = 97
) -> FeatureStore:
    if platform:
        online = {**online, "type": PLATFORM_ONLINE_STORES[online["type"]]}
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(root / f"registry-{platform}.db"),
        offline_store={"type": "duckdb"},
        online_store=online,
        batch_engine={"type": PLATFORM_ENGINE} if platform else "local",
        entity_key_serialization_version=3,
        materialization={"online_write_batch_size": batch_size, "pull_latest_features": True},
    )
    config.repo_path = root
    return FeatureStore(config=config)


def materialize_in_steps(tmp_path, stores: list[FeatureStore], compare) -> None:
    """Full, then incremental with newer rows and new keys, then an older window again."""
    rng = np.random.default_rng(11)
    path = tmp_path / "typed.parquet"
    first = typed_rows(rng, [day(0), day(1), day(2)], n_keys=300)
    first.to_parquet(path)
    for s in stores:
        s.apply(toy_views(str(path)))
        s.materialize(start_date=day(-1), end_date=day(2.5))
    compare("full")
    later = typed_rows(rng, [day(3), day(4)], n_keys=420)  # 120 new keys
    later = later[rng.random(len(later)) < 0.7]  # some keys get no newer row
    pd.concat([first, later]).to_parquet(path)
    for s in stores:
        s.materialize_incremental(end_date=day(5))
    compare("incremental")
    for s in stores:  # an older window: SQLite overwrites, Redis keeps the newer row
        s.materialize(start_date=day(-1), end_date=day(1.5))
    compare("older window")


def test_sqlite_toy_views_every_type_and_step(tmp_path):
    stores = [
        toy_store(tmp_path, {"type": "sqlite", "path": str(tmp_path / f"online-{p}.db")}, p, "toy")
        for p in (False, True)
    ]

    def compare(step: str) -> None:
        stock, platform = (sqlite_rows(tmp_path / f"online-{p}.db") for p in (False, True))
        assert set(stock) == set(platform) == {"toy_typed", "toy_by_product", "toy_by_shelf"}
        for table in stock:
            assert stock[table], f"{step}: {table} empty"
            assert platform[table] == stock[table], f"{step}: {table} differs"

    materialize_in_steps(tmp_path, stores, compare)
    # the platform's store is the one that wrote (not Feast's, by a fallback)
    assert type(stores[1]._get_provider().online_store).__name__ == "PlatformSqliteOnlineStore"


def test_redis_toy_views_every_type_and_step(tmp_path):
    require_servers(postgres=False)
    projects = [f"mat_{p}_{uuid.uuid4().hex[:8]}" for p in ("stock", "platform")]
    stores = [
        toy_store(tmp_path, {"type": "redis", "connection_string": REDIS}, p, project)
        for p, project in zip((False, True), projects, strict=True)
    ]

    def compare(step: str) -> None:
        stock, platform = (redis_hashes(p) for p in projects)
        assert stock, f"{step}: nothing written"
        assert platform == stock, f"{step}: hashes differ"

    try:
        materialize_in_steps(tmp_path, stores, compare)
    finally:
        for s in stores:
            s.teardown()


# -- the tiny retailer, through the platform's settings --------------------------------------


def retailer_copy(feature_env, tmp_path, name: str, materializer: Materializer):
    """The tiny retailer's feature tables in a data dir of their own, applied."""
    import shutil

    data = tmp_path / name
    shutil.copytree(feature_env.feature_dir, data / "features")
    shutil.copytree(feature_env.raw_dir, data / "raw")
    settings = feature_env.model_copy(update={"data_dir": data, "materializer": materializer})
    publish.apply(settings)
    return settings


def test_tiny_retailer_sqlite_as_stock_and_every_latest_key(feature_env, tmp_path):
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    stock, platform = (
        retailer_copy(feature_env, tmp_path, m.value, m)
        for m in (Materializer.feast, Materializer.platform)
    )
    end = publish.origin_close(stock) + timedelta(seconds=1)
    for settings in (stock, platform):
        publish.materialize(settings, end=end)
    written = {
        m: sqlite_rows(s.feast_dir / "online_store.db")
        for m, s in (("feast", stock), ("platform", platform))
    }
    assert written["platform"] == written["feast"]

    feast_store = open_store(platform)
    for view in feast_store.list_feature_views():
        keys = [e.name for e in view.entity_columns]
        offline = pd.read_parquet(view.batch_source.path)
        offline = offline[offline["event_timestamp"] < end].drop_duplicates(keys)
        expected = {
            serialize_entity_key(
                EntityKey(join_keys=keys, entity_values=[Value(string_val=str(v)) for v in row]),
                entity_key_serialization_version=3,
            )
            for row in offline[keys].itertuples(index=False)
        }
        stored = {row[0] for row in written["platform"][f"{feast_store.project}_{view.name}"]}
        assert expected and stored == expected, view.name


def test_tiny_retailer_redis_as_stock(feature_env, tmp_path):
    stock = retailer_copy(feature_env, tmp_path, "feast", Materializer.feast)
    platform = retailer_copy(feature_env, tmp_path, "platform", Materializer.platform)
    with (
        team_feast_project(stock) as stock_team,
        team_feast_project(platform, materialize=False) as platform_team,
    ):
        publish.materialize(platform_team)
        assert (
            open_store(platform_team, materializing=True).config.online_store.type
            == (PLATFORM_ONLINE_STORES["redis"])
        )
        written = redis_hashes(stock_team.feast_project)
        assert written and redis_hashes(platform_team.feast_project) == written


def test_feast_materializer_and_the_stores_read_stay_stock(feature_env):
    """Only a materializing store gets the platform's types; DEMAND_MATERIALIZER=feast none."""
    assert open_store(feature_env).config.online_store.type == "sqlite"
    platform = open_store(feature_env, materializing=True).config
    assert platform.online_store.type == PLATFORM_ONLINE_STORES["sqlite"]
    assert platform.batch_engine_config == {"type": PLATFORM_ENGINE}
    feast = feature_env.model_copy(update={"materializer": Materializer.feast})
    assert open_store(feast, materializing=True).config.online_store.type == "sqlite"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    """Feast's progress bars and view names go to the captured output, not a terminal."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
