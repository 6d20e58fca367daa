"""The platform's Redis writer reads every reply whatever the chunking, and a Redis lost
or silent mid-materialization is one clear error, with the keys not yet written untouched.

Against the real Redis, through tests/feastext/redis_proxy.py: on a Unix socket it
hands the client Redis's replies one byte per read (or in pieces of random sizes,
seeded), each read its own; over TCP it forwards so many bytes of the client's
commands and then dies or falls silent. redis-py itself is not replaced.
"""

from __future__ import annotations

import random
import time
import uuid

import pandas as pd
import pyarrow as pa
import pytest
import redis
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from demand.console import UserError
from feastext import materialization
from feastext.materialization import (
    PlatformRedisOnlineStore,
    PlatformRedisOnlineStoreConfig,
    _command,
    _OwedReplies,
)
from tests.feastext.redis_proxy import RedisProxy
from tests.feastext.test_materialization import toy_store
from tests.feastext.test_redis_materialization import (
    client,
    day,
    product,
    redis_key,
    rows,
    units_view,
)
from tests.servers import REDIS, require_servers


def every_byte():
    return lambda: 1


def random_points(seed: int):
    rng = random.Random(seed)
    return lambda: rng.randint(1, 9)


splits = pytest.mark.parametrize(
    "pieces",
    [every_byte, *(lambda s=s: random_points(s) for s in (1, 2, 3))],
    ids=["every byte", "random points, seed 1", "random points, seed 2", "random points, seed 3"],
)


def amounts(n: int) -> list[int]:
    """INCRBY amounts whose replies differ in length (CRLFs at ever other offsets)."""
    return [(-1) ** i * 7 ** (i % 22) for i in range(n)]  # within 64 bits


def incrby(keys: list[bytes], by: list[int]) -> list:
    return _command(
        [b"INCRBY"], [pa.array(keys, pa.binary()), pa.array([b"%d" % v for v in by], pa.binary())]
    )


@splits
def test_bulk_replies_are_read_whatever_the_chunking(pieces):
    """60 integer replies of 4 to 23 bytes, then an error reply among them: every reply
    comes back in order, the error raises with Redis's words, and the connection answers
    the next command in step."""
    require_servers(postgres=False)
    r = client()
    prefix = f"demand_test_{uuid.uuid4().hex[:8]}:".encode()
    keys = [prefix + b"%d" % i for i in range(60)]
    by = amounts(len(keys))
    with RedisProxy(unix=True, pieces=pieces()) as proxy:
        through = redis.Redis(unix_socket_path=proxy.address, socket_timeout=5)
        connection = through.connection_pool.get_connection()
        try:
            replies = _OwedReplies(connection)
            replies.send(incrby(keys, by), len(keys))
            assert replies.collect() == by
            r.set(keys[1], "not a number")
            replies.send(incrby(keys[:3], [1, 1, 1]), 3)
            with pytest.raises(redis.ResponseError, match=r"refused 1 of 3 .*not an integer"):
                replies.collect()
            replies.send(incrby(keys[2:3], [5]), 1)
            assert replies.collect() == [by[2] + 1 + 5]
        finally:
            through.connection_pool.release(connection)
            r.delete(*keys)
        if pieces is every_byte:  # the proxy did split: one read per byte
            assert proxy.pieces_down == proxy.sent_down > 60 * 4


@splits
def test_materialize_through_a_split_stream_writes_feasts_hashes(tmp_path, pieces):
    """Two materializations (the second one reads stored times back: bulk replies
    holding protobuf bytes) of 40 keys in batches of 16, through a stream split as above:
    every hash equals stock Feast's, written directly."""
    require_servers(postgres=False)
    path = tmp_path / "units.parquet"
    projects = {p: f"split_{p}_{uuid.uuid4().hex[:8]}" for p in ("stock", "platform")}
    with RedisProxy(unix=True, pieces=pieces()) as proxy:
        online = {
            "stock": {"type": "redis", "connection_string": REDIS},
            "platform": {
                "type": "redis",
                # host:port for Feast's parser; redis-py connects to the Unix socket
                "connection_string": f"{REDIS},unix_socket_path={proxy.address},socket_timeout=5",
            },
        }
        stores = {
            p: toy_store(tmp_path, online[p], p == "platform", project, batch_size=16)
            for p, project in projects.items()
        }
        try:
            rows(range(0, 30), day(1), 1.0).to_parquet(path)
            for store in stores.values():
                store.apply([product, units_view(str(path))])
                store.materialize(start_date=day(0.5), end_date=day(1.5))
            pd.concat(
                [rows(range(0, 30), day(1), 1.0), rows(range(20, 40), day(2), 2.0)]
            ).to_parquet(path)
            for store in stores.values():
                store.materialize(start_date=day(0.5), end_date=day(2.5))
            r = client()
            for p in range(40):
                stock, platform = (r.hgetall(redis_key(f"P{p}", projects[s])) for s in projects)
                assert platform == stock != {}, f"P{p} differs from stock Feast"
        finally:
            for store in stores.values():
                store.teardown()


# -- every call has a timeout ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "timeouts"),
    [
        ("", (30.0, 5.0)),
        (",socket_timeout=2,socket_connect_timeout=1", (2, 1)),
        (",socket_timeout=null", (30.0, 5.0)),
    ],
    ids=["none set", "the string's", "null"],
)
def test_the_writer_s_client_always_has_timeouts(options, timeouts):
    store = PlatformRedisOnlineStore()
    config = PlatformRedisOnlineStoreConfig(connection_string=REDIS + options)
    kwargs = store._get_client(config).connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == timeouts


# -- Redis lost mid-materialization ----------------------------------------------------------


def units(project: str, products: range) -> dict[int, dict]:
    r = client()
    return {p: r.hgetall(redis_key(f"P{p}", project)) for p in products}


def new_row(stored: dict, p: int) -> bool:
    """Whether a hash holds the day-1 row of P<p> whole (time and value)."""
    if not stored:
        return False
    ts, value = Timestamp(), Value()
    ts.ParseFromString(stored[b"_ts:units"])
    value.ParseFromString(stored[_mmh3("units:units")])
    return (ts.seconds, value.double_val) == (day(1).value // 10**9, 1_000.0 + p)


@pytest.mark.parametrize("then", ["dies", "silent"])
def test_a_redis_lost_mid_materialization_is_one_clear_error(tmp_path, monkeypatch, then):
    """600 keys stored at day 0, then their day-1 rows in batches of 100 through a proxy
    that forwards 40,000 bytes of commands (about a third) and then dies, or falls
    silent for a minute. The connection string sets no timeout: the writer's own (1 s
    here) applies. One UserError naming the server and what to do, within seconds;
    every key holds its day-0 row or its day-1 row, whole; materializing again (the
    nightly's incremental) writes the rest."""
    require_servers(postgres=False)
    monkeypatch.setattr(materialization, "SOCKET_TIMEOUT_S", 1.0)
    path = tmp_path / "units.parquet"
    project = f"lost_{uuid.uuid4().hex[:8]}"
    keys = range(600)
    direct = toy_store(tmp_path, {"type": "redis", "connection_string": REDIS}, True, project, 100)
    try:
        rows(keys, day(0), 0.0).to_parquet(path)
        direct.apply([product, units_view(str(path))])
        direct.materialize(start_date=day(-0.5), end_date=day(0.5))
        before = units(project, keys)
        pd.concat([rows(keys, day(0), 0.0), rows(keys, day(1), 1_000.0)]).to_parquet(path)

        with RedisProxy(forward=40_000, then=then, silent_s=60) as proxy:
            online = {"type": "redis", "connection_string": proxy.address}
            lost = toy_store(tmp_path, online, True, project, 100)
            started = time.monotonic()
            with pytest.raises(UserError) as raised:
                lost.materialize_incremental(end_date=day(1.5))
            took = time.monotonic() - started
            assert proxy.cut.is_set()
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith(f"Redis at {proxy.address} failed while materializing units")
        assert "materialize again" in message
        assert ("Timeout" in message) == (then == "silent"), message
        assert took < proxy.silent_s, f"{took:.0f} s: no timeout"  # closed only then

        after = units(project, keys)
        written = [p for p in keys if new_row(after[p], p)]
        untouched = [p for p in keys if after[p] == before[p]]
        assert sorted(written + untouched) == list(keys), "a key half written or lost"
        assert written and untouched, (len(written), len(untouched))

        direct.materialize_incremental(end_date=day(1.5))  # the failed interval is not recorded
        assert all(new_row(stored, p) for p, stored in units(project, keys).items())
    finally:
        direct.teardown()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
