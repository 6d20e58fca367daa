"""The platform's Redis writer keeps Feast's rules on its bulk path.

Feast's rule: a row overwrites a key's hash only when it is newer than the stored
``_ts:<view>`` (or than a row of the same key queued earlier in the batch); the same
instant does not overwrite. The platform reads a batch's stored times with one script
and reads the HSET/EXPIRE replies in bulk; these tests plant what those
two must notice: a key newer in the store than in the batch, mixed with older and new
keys in one batch, and Redis refusing a write.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.types import Float64
from google.protobuf.timestamp_pb2 import Timestamp

from feastext.materialization import _command, _newer_than, _OwedReplies
from tests.feastext.test_materialization import toy_store
from tests.servers import REDIS, require_servers

T0 = pd.Timestamp("2026-01-01", tz="UTC")
product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def stamp(seconds: int) -> bytes:
    return Timestamp(seconds=seconds).SerializeToString()


def client() -> redis.Redis:
    host, port = REDIS.split(":")
    return redis.Redis(host=host, port=int(port))


# -- the rule, worked by hand ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "stored", "seconds", "written"),
    [
        # a@3 (nothing stored) in; a@2 older than the a@3 queued before it; b@6 newer
        # than its stored 5; c@5 the same instant as stored; d@7 older than stored 9;
        # a@4 newer than a@3
        (
            [b"a", b"a", b"b", b"c", b"d", b"a"],
            [None, None, stamp(5), stamp(5), stamp(9), None],
            [3, 2, 6, 5, 7, 4],
            [0, 2, 5],
        ),
        # every key once (the batch the engine sends after pulling the latest rows)
        (
            [b"a", b"b", b"c", b"d"],
            [None, stamp(5), stamp(5), stamp(9)],
            [3, 6, 5, 7],
            [0, 1],
        ),
    ],
)
def test_newer_than_is_feasts_rule(keys, stored, seconds, written):
    nanos = np.array(seconds, dtype=np.int64) * 1_000_000_000
    assert _newer_than(stored, pa.array(keys, pa.binary()), nanos).tolist() == written


# -- a mixed batch, end to end ---------------------------------------------------------------


def units_view(path: str) -> FeatureView:
    return FeatureView(
        name="units",
        entities=[product],
        ttl=timedelta(days=30),
        schema=[Field(name="units", dtype=Float64)],
        source=FileSource(name="units", path=path, timestamp_field="event_timestamp"),
    )


def redis_store(root, project: str, platform: bool, **online) -> FeatureStore:
    """The toy view over Redis, one batch per 1,000 rows (a test's batch is one write)."""
    redis_online = {"type": "redis", "connection_string": REDIS, **online}
    return toy_store(root, redis_online, platform, project, batch_size=1_000)


def redis_key(product_id: str, project: str) -> bytes:
    key = EntityKey(join_keys=["product_id"], entity_values=[Value(string_val=product_id)])
    return serialize_entity_key(key, entity_key_serialization_version=3) + project.encode()


def rows(products: range, when: pd.Timestamp, units: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": [f"P{p}" for p in products],
            "units": [units + p for p in products],
            "event_timestamp": pd.DatetimeIndex([when] * len(products)).as_unit("us"),
        }
    )


def test_a_newer_stored_row_survives_a_mixed_bulk_batch(tmp_path):
    """One batch of 100 keys: 25 stored newer (kept), 25 stored older (overwritten),
    50 new (written); the hashes are Feast's, field by field, TTL included."""
    require_servers(postgres=False)
    path = tmp_path / "units.parquet"
    projects = {p: f"mixed_{p}_{uuid.uuid4().hex[:8]}" for p in ("stock", "platform")}
    stores = {
        p: redis_store(tmp_path, project, p == "platform", key_ttl_seconds=3_600)
        for p, project in projects.items()
    }
    first = pd.concat([rows(range(0, 25), day(3), 300.0), rows(range(25, 50), day(0), 0.0)])
    first.to_parquet(path)
    try:
        for store in stores.values():
            store.apply([product, units_view(str(path))])
            store.materialize(start_date=day(-0.5), end_date=day(3.5))
        pd.concat([first, rows(range(0, 100), day(1), 100.0)]).to_parquet(path)
        for store in stores.values():  # only the day-1 rows are in this window
            store.materialize(start_date=day(0.5), end_date=day(1.5))

        r = client()
        field = _mmh3("units:units")
        for p in range(100):
            stock, platform = (r.hgetall(redis_key(f"P{p}", projects[s])) for s in projects)
            assert platform == stock, f"P{p} differs from stock Feast"
            ts, value = Timestamp(), Value()
            ts.ParseFromString(platform[b"_ts:units"])
            value.ParseFromString(platform[field])
            expected = (day(3), 300.0 + p) if p < 25 else (day(1), 100.0 + p)
            assert (ts.seconds, value.double_val) == (expected[0].value // 10**9, expected[1])
            assert 0 < r.ttl(redis_key(f"P{p}", projects["platform"])) <= 3_600
    finally:
        for store in stores.values():
            store.teardown()


# -- Redis refusing a write ------------------------------------------------------------------


def test_an_error_reply_among_bulk_replies_raises_with_redis_message():
    require_servers(postgres=False)
    r = client()
    prefix = f"demand_test_{uuid.uuid4().hex[:8]}:".encode()
    keys = [prefix + name for name in (b"a", b"text", b"b")]
    r.set(keys[1], "not a hash")
    connection = r.connection_pool.get_connection()
    try:
        replies = _OwedReplies(connection)
        replies.send(_command([b"HSET"], [pa.array(keys, pa.binary()), b"f", b"v"]), len(keys))
        with pytest.raises(redis.ResponseError, match=r"refused 1 of 3 writes.*WRONGTYPE"):
            replies.collect()
        # Redis applies each command alone: the others are in, and the connection
        # answers the next command in step
        assert r.hget(keys[0], "f") == r.hget(keys[2], "f") == b"v"
        replies.send(_command([b"HSET"], [pa.array(keys[:1], pa.binary()), b"g", b"w"]), 1)
        replies.collect()
        assert r.hget(keys[0], "g") == b"w"
    finally:
        r.connection_pool.release(connection)
        r.delete(*keys)


@pytest.mark.parametrize("skip_dedup", [False, True], ids=["read then write", "write only"])
def test_materialize_surfaces_a_refused_write(tmp_path, skip_dedup):
    """A key of the project holding a string: the script's read (Feast's rule on) or the
    HSET's reply (skip_dedup) is Redis's WRONGTYPE, and materialize raises it."""
    require_servers(postgres=False)
    path = tmp_path / "units.parquet"
    rows(range(0, 30), day(1), 1.0).to_parquet(path)
    project = f"refused_{uuid.uuid4().hex[:8]}"
    store = redis_store(tmp_path, project, True, skip_dedup=skip_dedup)
    store.apply([product, units_view(str(path))])
    r = client()
    planted = redis_key("P7", project)
    r.set(planted, "not a hash")
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            store.materialize(start_date=day(0.5), end_date=day(1.5))
    finally:
        r.delete(planted)
        store.teardown()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
