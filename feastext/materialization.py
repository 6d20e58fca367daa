"""Materialization through Feast's plug-ins, with values serialized a column at a time.

Feast's local compute engine reads each view's latest rows, then converts them to
protobuf one cell at a time and hands the store a list of protos (about 4,000 keys/s
measured here). :class:`PlatformComputeEngine` is that engine with one node replaced:
the output node serializes each Arrow batch column-wise (:mod:`feastext.online_values`)
and hands the store the bytes. Reading, filtering and de-duplicating stay Feast's, so
the same rows reach the store; the stores below write them with Feast's layout and
rules, and inherit everything else (reads, apply, teardown) from Feast's stores:

- :class:`PlatformSqliteOnlineStore`: Feast's upsert, one ``executemany`` per batch in
  one transaction, rows in key order (what the primary key's B-tree wants);
- :class:`PlatformRedisOnlineStore`: Feast's hash per key (mmh3 field names, the
  ``_ts:<view>`` field, only a newer row overwrites, the key TTL), pipelined.

``demand.featurestore`` renders a RepoConfig with these types for materialization
(``DEMAND_MATERIALIZER=platform``); the yaml files stay stock, so the feast CLI and
serving read the same layout with Feast's own stores. Another online store type keeps
Feast's path. tests/feastext/test_materialization.py compares every stored byte with
what stock Feast writes.

Relies on (checked against feast 0.67.0, redis 7.4.1, hiredis 3.5.0, pyarrow 25.0.1):
- Feast's local compute engine internals: ``LocalComputeEngine._materialize_one`` (copied
  in :meth:`PlatformComputeEngine._materialize_one`), ``LocalFeatureBuilder``,
  ``LocalOutputNode``, ``ArrowTableValue``, ``LocalMaterializationJob``;
- Feast's Redis store privates ``_get_client`` and ``_parse_connection_string`` (the client
  Feast would build, with the timeouts below added where the connection string has none),
  ``feast.infra.online_stores.helpers._mmh3`` (the hash's field names) and the SQLite/Redis
  stores' table and key layout (``compute_table_id``, ``_ts:<view>``);
- redis-py's public connection calls (none underscore-private):
  ``client.connection_pool.get_connection()`` / ``release()``, one connection held for a
  whole view, and ``connection.disconnect()`` when a reply may be left unread;
  ``connection.send_packed_command(buffers, check_health=False)`` (bytes already in RESP,
  Redis's wire protocol); ``connection.read_response()``, one reply parsed by redis-py's
  reader (hiredis's ``Reader`` when installed) whatever the socket's chunking: an error
  reply raised as ``redis.ResponseError`` without closing the connection, a broken or
  silent socket as ``redis.ConnectionError`` / ``redis.TimeoutError`` after closing it.
tests/feastext/test_materialization.py fails when any of these changes what is stored.

Every Redis call of a materialization has a timeout: the connection string's
``socket_timeout`` / ``socket_connect_timeout``, or :data:`SOCKET_TIMEOUT_S` /
:data:`CONNECT_TIMEOUT_S` where it sets none (redis-py waits forever by default). A
Redis lost or silent mid-view raises :class:`demand.servers.ServerUnavailable` naming
the server: every key written before holds the new row, whole (one HSET per key), and
no later key is touched; Feast records the materialized interval only after success,
so materializing again (full or incremental) writes the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import redis
from feast.infra.common.materialization_job import MaterializationJobStatus
from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue
from feast.infra.compute_engines.local.compute import (
    LocalComputeEngine,
    LocalComputeEngineConfig,
)
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.compute_engines.local.nodes import LocalOutputNode
from feast.infra.online_stores.helpers import _mmh3, compute_table_id, compute_versioned_name
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    adapt_datetime_epoch,
)
from feast.utils import make_tzaware, to_naive_utc

from demand.servers import ServerUnavailable
from feastext import online_values

ENGINE = "feastext.materialization.PlatformComputeEngine"
SQLITE = "feastext.materialization.PlatformSqliteOnlineStore"
REDIS = "feastext.materialization.PlatformRedisOnlineStore"
# Feast's store type → the platform's, for the stores this module writes
ONLINE_STORES = {"sqlite": SQLITE, "redis": REDIS}
DEFAULT_BATCH = 10_000  # rows per write when the yaml leaves online_write_batch_size unset
# seconds a Redis call may wait when the connection string sets no timeout: a batch's
# replies come within a second on a live server; a dead one must not hang the night
SOCKET_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SerializedRows:
    """One batch of a view's rows, serialized as Feast would: entity keys (an Arrow
    binary array), one :class:`online_values.Column` per feature (in the view's order),
    event and created times as numpy datetime64 (naive UTC, Feast's own conversion of
    the Arrow column)."""

    keys: pa.Array
    features: dict[str, online_values.Column]
    event_ts: np.ndarray
    created_ts: np.ndarray | None

    def distinct(self, stamps: np.ndarray, form: Callable) -> tuple[list, np.ndarray]:
        """``form`` of each distinct time as the datetime Feast converts it to (a batch has
        few), and each row's index into them."""
        distinct, index = np.unique(stamps, return_inverse=True)
        return [form(pd.Timestamp(t).to_pydatetime()) for t in distinct], index.reshape(-1)

    def datetimes(self, stamps: np.ndarray, form: Callable) -> list:
        """``form`` of each row's time, computed once per distinct time."""
        formed, index = self.distinct(stamps, form)
        return [formed[i] for i in index.tolist()]


def join_keys(view) -> dict[str, object]:
    return {e.name: e.dtype.to_value_type() for e in view.entity_columns}


def serialize(
    batch: pa.RecordBatch, view, version: int, keys: pa.Array | None = None
) -> SerializedRows:
    """``keys``: the batch's serialized entity keys when the caller has them already."""
    source = view.batch_source

    def times(name: str) -> np.ndarray:
        return pd.to_datetime(batch.column(name).to_numpy(zero_copy_only=False)).to_numpy()

    return SerializedRows(
        keys=keys
        if keys is not None
        else online_values.entity_keys(batch, join_keys(view), version),
        features={
            f.name: online_values.column(batch.column(f.name), f.dtype.to_value_type())
            for f in view.features
        },
        event_ts=times(source.timestamp_field),
        created_ts=times(source.created_timestamp_column)
        if source.created_timestamp_column
        else None,
    )


# -- the engine ------------------------------------------------------------------------------


class PlatformComputeEngineConfig(LocalComputeEngineConfig):
    type: Literal["feastext.materialization.PlatformComputeEngine"] = ENGINE  # type: ignore[assignment]


class SerializedOutputNode(LocalOutputNode):
    """Feast's output node, writing serialized batches to a store that takes them."""

    def __init__(self, name, feature_view, inputs=None, tqdm_builder=None):
        super().__init__(name, feature_view, inputs=inputs)
        self.tqdm_builder = tqdm_builder

    def execute(self, context) -> ArrowTableValue:
        store = context.online_store
        if not self.feature_view.online or not hasattr(store, "write_serialized"):
            return super().execute(context)
        table = self.get_single_table(context).data
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        config = context.repo_config
        size = config.materialization_config.online_write_batch_size or DEFAULT_BATCH
        bar = self.tqdm_builder(table.num_rows) if self.tqdm_builder and table.num_rows else None

        version = config.entity_key_serialization_version
        keys = pa.chunked_array(
            [
                online_values.entity_keys(chunk, join_keys(self.feature_view), version)
                for chunk in table.to_batches(max_chunksize=size)
            ],
            pa.binary(),
        )
        rows = table
        if getattr(store, "key_order", False) and table.num_rows:
            # every row in entity-key order, the order of SQLite's primary key: its B-tree
            # then takes the rows as appends (measured here: 17k keys/s against 13k for rows
            # sorted only within each batch, at 100k keys; the gap grows with the table).
            # Arrow's sort is stable (a key's later row stays later, as Feast writes them)
            # and orders binary values byte by byte, as Python orders bytes. Redis hashes
            # have no order to keep: there the rows go in as Feast's engine reads them
            order = pc.sort_indices(keys)
            keys = keys.take(order)
            rows = table.take(order)

        def batches():
            # every batch: Feast's own path keeps only the first chunk when the size is unset
            start = 0
            for batch in rows.to_batches(max_chunksize=size):
                end = start + batch.num_rows
                ordered = keys.slice(start, batch.num_rows).combine_chunks()
                yield serialize(batch, self.feature_view, version, ordered)
                start = end
                if bar is not None:
                    bar.update(batch.num_rows)

        store.write_serialized(config, self.feature_view, batches())
        if bar is not None:
            bar.close()
        if self.feature_view.offline and table.num_rows:
            context.offline_store.offline_write_batch(
                config=config, feature_view=self.feature_view, table=table, progress=None
            )
        return output


class _Builder(LocalFeatureBuilder):
    def build_output_nodes(self, view, input_node):
        node = SerializedOutputNode(
            "output",
            self.dag_root.view,
            inputs=[input_node],
            tqdm_builder=getattr(self.task, "tqdm_builder", None),
        )
        self.nodes.append(node)
        return node


class PlatformComputeEngine(LocalComputeEngine):
    """Feast's local engine whose output node writes serialized batches."""

    def _materialize_one(self, registry, task, **kwargs) -> LocalMaterializationJob:
        # LocalComputeEngine._materialize_one with the builder above
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        context = self.get_execution_context(registry, task)
        try:
            _Builder(registry, task, backend=self._get_backend(context)).build().execute(context)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
        except Exception as error:
            return LocalMaterializationJob(
                job_id=job_id, status=MaterializationJobStatus.ERROR, error=error
            )


# -- the stores ------------------------------------------------------------------------------


class PlatformSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["feastext.materialization.PlatformSqliteOnlineStore"] = SQLITE  # type: ignore[assignment]


class PlatformSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite store; serialized batches go in with Feast's upsert, one transaction."""

    key_order = True  # the output node hands the rows over in entity-key order

    def write_serialized(self, config, table, batches: Iterable[SerializedRows]) -> None:
        store = config.online_store
        if store.vector_enabled or getattr(store, "enable_openai_compatible_store", False):
            raise ValueError(
                "the platform's materializer writes SQLite without vectors or value_num; "
                "set DEMAND_MATERIALIZER=feast for this online store"
            )
        if not table.features:  # Feast writes no row for a view without features either
            for _ in batches:
                pass
            return
        name = compute_table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        # Feast's upsert, one statement per key with a row per feature: ~1.4x the rows/s of
        # a statement per row measured here; SQLite takes 32,766 parameters a statement
        if len(table.features) * 6 > 32_766:
            raise ValueError(
                f"{table.name} has {len(table.features)} features, more than the platform's "
                "SQLite writer puts in one statement; set DEMAND_MATERIALIZER=feast"
            )
        upsert = (
            f'INSERT INTO "{name.replace(chr(34), chr(34) * 2)}" '
            "(entity_key, feature_name, value, value_text, event_ts, created_ts) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(table.features))
            + " ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
            "value = excluded.value, value_text = excluded.value_text, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts;"
        )
        conn = self._get_conn(config)
        with conn:  # one transaction: all of the view's rows or none
            for rows in batches:
                conn.executemany(upsert, _sqlite_rows(rows))


def _sqlite_rows(rows: SerializedRows) -> Iterator[tuple]:
    """Each key's rows as one flat tuple, Feast's row per feature: (entity_key,
    feature_name, value, value_text, event_ts, created_ts), features by name (the primary
    key's order; the keys come in key order from the output node). The tuples are zipped
    from whole columns in C: building them per key in Python took as long as SQLite."""

    # what Feast's adapter (registered with sqlite3 by Feast's store) makes of the
    # naive UTC datetime Feast binds: whole seconds, once per distinct time
    def stored(moment):
        return adapt_datetime_epoch(to_naive_utc(moment))

    event = rows.datetimes(rows.event_ts, stored)
    created = (
        rows.datetimes(rows.created_ts, stored) if rows.created_ts is not None else repeat(None)
    )
    keys = rows.keys.to_numpy(zero_copy_only=False).tolist()
    columns: list[Iterable] = []
    for name in sorted(rows.features):
        column = rows.features[name]
        columns += [keys, repeat(name), column.as_bytes(), column.texts(), event, created]
    return zip(*columns, strict=False)  # the repeats are endless, the lists equal


class PlatformRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    type: Literal["feastext.materialization.PlatformRedisOnlineStore"] = REDIS  # type: ignore[assignment]


@dataclass(frozen=True)
class _Hashes:
    """One batch as Feast's hashes: Redis keys (entity key and project), the ``_ts:<view>``
    field, each row's stored time and its nanoseconds (what the newer-than rule compares),
    and the feature fields (mmh3 names) with their values, Arrow binary arrays all."""

    keys: pa.Array
    ts_field: bytes
    stamps: pa.Array
    nanos: np.ndarray
    fields: list[bytes]
    values: list[pa.Array]

    @classmethod
    def of(cls, config, table, rows: SerializedRows) -> _Hashes:
        from google.protobuf.timestamp_pb2 import Timestamp

        view = compute_versioned_name(table, config.registry.enable_online_feature_view_versioning)

        def stamp(moment):
            ts = Timestamp()
            ts.FromDatetime(make_tzaware(moment))
            return ts.SerializeToString(), ts.seconds * 1_000_000_000 + ts.nanos

        formed, index = rows.distinct(rows.event_ts, stamp)
        return cls(
            keys=pc.binary_join_element_wise(
                rows.keys, pa.scalar(config.project.encode("utf-8"), pa.binary()), _EMPTY
            ),
            ts_field=f"_ts:{view}".encode(),
            stamps=pa.array([s for s, _ in formed], pa.binary()).take(pa.array(index)),
            nanos=np.array([n for _, n in formed], dtype=np.int64)[index],
            fields=[_mmh3(f"{view}:{name}") for name in rows.features],
            values=[c.values for c in rows.features.values()],
        )


class PlatformRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis store; serialized batches go in as Feast's hashes, pipelined.

    On one server (not Redis Cluster) the whole view goes through one connection: per
    batch one script reads every key's stored ``_ts`` (one reply, not one per key), then
    the HSET (and EXPIRE) commands go out as one RESP payload built column-wise in Arrow
    (redis-py packs each command's arguments in Python: 1.9 s of 2.5 s per 100k keys
    measured here), and their integer replies are read back in bulk before the next
    batch's read: the server writes one batch while the next is serialized.

    On Redis Cluster (``redis_type: redis_cluster``) a batch's keys live on several
    masters, so one connection and one script cannot read them: each batch is two
    redis-py cluster pipelines (:meth:`_write_pipelined`), the HGETs of its ``_ts`` fields,
    then its HSETs; redis-py groups each pipeline's commands by master and sends each
    group in one round trip. Pipelined, but packed by redis-py a command at a time, so
    slower per key than the one-server path (tests/serving/test_redis_cluster.py counts
    the round trips and compares the bytes with one server's)."""

    def _get_client(self, online_store_config):
        """Feast's client, with a timeout on every call: the connection string's, or
        :data:`SOCKET_TIMEOUT_S` / :data:`CONNECT_TIMEOUT_S` where it has none (or null)."""
        if not self._client:
            string = online_store_config.connection_string
            _, options = self._parse_connection_string(string)
            defaults = {"socket_timeout": SOCKET_TIMEOUT_S}
            defaults["socket_connect_timeout"] = CONNECT_TIMEOUT_S
            missing = [f"{k}={v}" for k, v in defaults.items() if options.get(k) is None]
            if missing:  # Feast reads the parts in order: these come last, so they win a null
                online_store_config = online_store_config.model_copy(
                    update={"connection_string": ",".join([string, *missing])}
                )
        return super()._get_client(online_store_config)

    def write_serialized(self, config, table, batches: Iterable[SerializedRows]) -> None:
        store = config.online_store
        try:
            self._write(config, table, batches)
        except (
            redis.ConnectionError,
            redis.TimeoutError,
            # a Redis Cluster that lost a master: CLUSTERDOWN, or a slot no node covers
            redis.exceptions.ClusterError,
            redis.exceptions.RedisClusterException,
        ) as error:
            # one line for the user; the connection is closed, nothing more is sent
            raise ServerUnavailable(
                f"Redis at {_server(store.connection_string)} failed while materializing "
                f"{table.name} ({_first_line(error)}): the keys written before hold the new "
                "rows, the others are untouched; check that Redis answers "
                "(`redis-cli ping`), then materialize again"
            ) from None

    def _write(self, config, table, batches: Iterable[SerializedRows]) -> None:
        store = config.online_store
        client = self._get_client(store)
        if not isinstance(client, redis.Redis) or isinstance(client, redis.RedisCluster):
            for rows in batches:
                self._write_pipelined(client, store, _Hashes.of(config, table, rows))
            return
        connection = client.connection_pool.get_connection()
        try:
            replies = _OwedReplies(connection)
            for rows in batches:
                hashes = _Hashes.of(config, table, rows)
                if store.skip_dedup:
                    newer = None
                else:
                    replies.collect()  # the earlier batch's replies come before the read's
                    newer = _newer_than(_stored_ts(connection, hashes), hashes.keys, hashes.nanos)
                _send_hashes(replies, hashes, newer, store.key_ttl_seconds)
            replies.collect()
        except BaseException:
            connection.disconnect()  # replies may be left unread: never reuse it
            raise
        finally:
            client.connection_pool.release(connection)

    @staticmethod
    def _write_pipelined(client, store, hashes: _Hashes) -> None:
        """Feast's own commands through a redis-py pipeline (Redis Cluster): two pipeline
        executions per batch, each one round trip per master."""
        keys = hashes.keys.to_numpy(zero_copy_only=False).tolist()
        with client.pipeline(transaction=False) as pipe:
            if store.skip_dedup:
                newer = range(len(keys))
            else:
                for key in keys:
                    pipe.hget(key, hashes.ts_field)
                newer = _newer_than(pipe.execute(), hashes.keys, hashes.nanos).tolist()
            stamps = hashes.stamps.to_numpy(zero_copy_only=False)
            columns = [v.to_numpy(zero_copy_only=False) for v in hashes.values]
            for i in newer:
                # HSET key _ts:<view> <ts> <field> <value> …, as Feast's hset(mapping=…)
                pairs = chain.from_iterable(
                    zip(hashes.fields, (c[i] for c in columns), strict=True)
                )
                pipe.execute_command("HSET", keys[i], hashes.ts_field, stamps[i], *pairs)
                if store.key_ttl_seconds:
                    pipe.expire(name=keys[i], time=store.key_ttl_seconds)
            pipe.execute()


def _newer_than(stored_ts: list[bytes | None], keys: pa.Array, nanos: np.ndarray) -> np.ndarray:
    """The rows to write: Feast's rule, a row overwrites only an older stored row (or
    an older row of the same key earlier in the batch). A stored time of 0 counts as
    none, as in Feast."""
    from google.protobuf.timestamp_pb2 import Timestamp

    known: dict[bytes | None, int] = {None: 0}
    for previous in set(stored_ts):  # a batch stores few distinct times
        if previous not in known:
            ts = Timestamp()
            ts.ParseFromString(previous)
            known[previous] = ts.seconds * 1_000_000_000 + ts.nanos
    stored = np.array([known[s] for s in stored_ts], dtype=np.int64)
    if pc.count_distinct(keys).as_py() == len(keys):
        return np.flatnonzero((stored == 0) | (nanos > stored))
    latest: dict[bytes, int] = {}
    newer = []
    for i, key in enumerate(keys.to_numpy(zero_copy_only=False).tolist()):
        seen = max(int(stored[i]), latest.get(key, 0))
        if seen and nanos[i] <= seen:
            continue
        latest[key] = int(nanos[i])
        newer.append(i)
    return np.array(newer, dtype=np.int64)


# every key's stored _ts:<view> field in one reply (false, a nil reply, where none)
_READ_TS = (
    "local stored = {} "
    "for i, key in ipairs(KEYS) do stored[i] = redis.call('HGET', key, ARGV[1]) end "
    "return stored"
)
_READ_AT_ONCE = 10_000  # keys a script reads: the server serves no one else while it runs


def _stored_ts(connection, hashes: _Hashes) -> list[bytes | None]:
    """Each key's stored ``_ts:<view>`` (None where none), read by one script per
    10,000 keys: one reply each, the server's HGET per key."""
    stored: list[bytes | None] = []
    for start in range(0, len(hashes.keys), _READ_AT_ONCE):
        keys = hashes.keys.slice(start, _READ_AT_ONCE)
        head = b"*%d\r\n" % (3 + len(keys) + 1) + b"".join(
            _text(w) for w in (b"EVAL", _READ_TS.encode(), str(len(keys)).encode())
        )
        payload = [head, *_rows(b"", [keys]), _text(hashes.ts_field)]
        connection.send_packed_command(payload, check_health=False)
        reply = connection.read_response()
        if not isinstance(reply, list) or len(reply) != len(keys):
            raise redis.ResponseError(f"reading {hashes.ts_field.decode()}: unexpected reply")
        stored += [r or None for r in reply]
    return stored


def _send_hashes(replies: _OwedReplies, hashes: _Hashes, newer, ttl) -> None:
    """HSET key _ts:<view> <ts> <field> <value> … for the rows in ``newer`` (all when
    None), as Feast's hset(mapping=…), and EXPIRE key ttl when the store has a TTL."""
    keys, stamps, values = hashes.keys, hashes.stamps, hashes.values
    if newer is not None:
        if not len(newer):
            return
        if len(newer) < len(keys):
            pick = pa.array(newer, pa.int64())
            keys, stamps = keys.take(pick), stamps.take(pick)
            values = [v.take(pick) for v in values]
    if not len(keys):
        return
    arguments: list = [keys, hashes.ts_field, stamps]
    for name, column in zip(hashes.fields, values, strict=True):
        arguments += [name, column]
    if ttl:  # each key's EXPIRE right after its HSET: a write cut short leaves at most
        # one key with its new row and without its TTL, not a whole batch
        expire = ([b"EXPIRE"], [keys, str(ttl).encode()])
        replies.send(_command([b"HSET"], arguments, expire), 2 * len(keys))
    else:
        replies.send(_command([b"HSET"], arguments), len(keys))


class _OwedReplies:
    """The integer replies the server owes for commands sent without waiting, read back
    in bulk by redis-py's reader (``connection.read_response``, one reply each: correct
    whatever the socket's chunking; counting line ends per ``recv`` was not, a CRLF split
    across two reads lost a reply and the count then waited for bytes that never came).
    Each reply must be an integer; error replies are counted and the first one raised
    with Redis's message once every owed reply is read, so the connection stays in step.
    Read only when nothing else is owed (each ``collect`` comes before the next command
    that replies otherwise)."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.owed = 0

    def send(self, payload: list, replies: int) -> None:
        self.connection.send_packed_command(payload, check_health=False)
        self.owed += replies

    def collect(self) -> list[int]:
        """The owed replies, in order (the store only checks them; tests compare them)."""
        owed, self.owed = self.owed, 0
        read = self.connection.read_response
        replies: list = []
        refused, first = 0, ""
        for _ in range(owed):
            try:
                reply = read()
            except redis.ResponseError as error:  # raised for an error reply, still in step
                reply = error
            if type(reply) is not int:
                refused += 1
                first = first or str(reply)
            replies.append(reply)
        if refused:
            raise redis.ResponseError(
                f"Redis refused {refused:,} of {owed:,} writes; the first said: {first}"
            )
        return replies


def _server(connection_string: str) -> str:
    """Where Feast's connection string points, without its options (a password among them):
    its ``host:port`` parts, or its ``unix_socket_path``."""
    parts = [p.strip() for p in connection_string.split(",")]
    for part in parts:
        name, _, value = part.partition("=")
        if name == "unix_socket_path":
            return value
    return ",".join(p for p in parts if p and "=" not in p) or "localhost:6379"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_EMPTY = pa.scalar(b"", pa.binary())


def _text(value: bytes) -> bytes:
    """A RESP bulk string: ``$<length>\\r\\n<bytes>\\r\\n``."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


class _Raw(bytes):
    """Bytes :func:`_rows` puts in as they are (a command's header), not as a bulk string."""


def _command(words: list[bytes], arguments: list, *more: tuple[list[bytes], list]) -> list:
    """RESP for one command per row: ``words`` then ``arguments`` (Arrow binary arrays
    of equal length, or bytes the same for every row), the rows back to back. ``more``:
    further commands as (words, arguments), each row's right after that row's first."""
    pieces: list = []
    for command_words, command_arguments in [(words, arguments), *more]:
        count = len(command_words) + len(command_arguments)
        head = b"*%d\r\n" % count + b"".join(_text(w) for w in command_words)
        pieces += [_Raw(head), *command_arguments]
    return _rows(b"", pieces)


# "$<length>\r\n" of each length up to 4 KiB, taken by index: a feature value is short
_LENGTHS = pa.array([b"$%d\r\n" % n for n in range(4096)], pa.binary())


def _rows(head: bytes, arguments: list) -> list:
    """Each row as ``head`` then every argument as a RESP bulk string, the rows back to
    back, as buffers to send. Every piece (constant, length, value) of every row goes into
    one Arrow array in row order by one ``take``, whose data buffer is then the payload:
    no Python object per row (Arrow's element-wise join of ~60 pieces a row measured
    here 1.5-2x slower)."""
    rows = next(len(a) for a in arguments if not isinstance(a, bytes))
    constants: list[bytes] = []
    arrays: list[pa.Array] = []
    layout: list[tuple[bool, int]] = []  # (constant?, index) per piece of a row

    def constant(piece: bytes) -> None:
        if piece:
            layout.append((True, len(constants)))
            constants.append(piece)

    def array(values: pa.Array) -> None:
        layout.append((False, len(arrays)))
        arrays.append(values)

    pending = head
    for argument in arguments:
        if isinstance(argument, bytes):
            pending += argument if isinstance(argument, _Raw) else _text(argument)
            continue
        if argument.null_count:
            raise ValueError("a Redis argument cannot be null")
        constant(pending)
        lengths = pc.binary_length(argument)
        if pc.max(lengths).as_py() < len(_LENGTHS):
            array(_LENGTHS.take(lengths))
        else:
            dollar, end = pa.scalar(b"$", pa.binary()), pa.scalar(b"\r\n", pa.binary())
            digits = pc.cast(pc.cast(lengths, pa.string()), pa.binary())
            array(pc.binary_join_element_wise(dollar, digits, end, _EMPTY))
        array(argument)
        pending = b"\r\n"
    constant(pending)
    pieces = [pa.array(constants, pa.binary()), *arrays]
    starts = np.cumsum([0] + [len(p) for p in pieces])
    index = np.empty((rows, len(layout)), dtype=np.int64)
    for column, (is_constant, i) in enumerate(layout):
        index[:, column] = i if is_constant else starts[1 + i] + np.arange(rows)
    whole = pa.concat_arrays(pieces).take(pa.array(index.reshape(-1)))
    _, offsets, data = whole.buffers()
    bounds = np.frombuffer(offsets, np.int32)
    return [memoryview(data)[bounds[whole.offset] : bounds[whole.offset + len(whole)]]]
