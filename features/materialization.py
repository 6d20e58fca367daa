"""Materialization through Feast's plug-ins, with values serialized a column at a time.

Feast's local compute engine reads each view's latest rows, then converts them to
protobuf one cell at a time and hands the store a list of protos (about 4,000 keys/s
measured here). :class:`PlatformComputeEngine` is that engine with one node replaced:
the output node serializes each Arrow batch column-wise (:mod:`features.online_values`)
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
Feast's path. tests/features/test_materialization.py compares every stored byte with
what stock Feast writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
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

from features import online_values

ENGINE = "features.materialization.PlatformComputeEngine"
SQLITE = "features.materialization.PlatformSqliteOnlineStore"
REDIS = "features.materialization.PlatformRedisOnlineStore"
# Feast's store type → the platform's, for the stores this module writes
ONLINE_STORES = {"sqlite": SQLITE, "redis": REDIS}
DEFAULT_BATCH = 10_000  # rows per write when the yaml leaves online_write_batch_size unset


@dataclass(frozen=True)
class SerializedRows:
    """One batch of a view's rows, serialized as Feast would: entity keys, one
    :class:`online_values.Column` per feature (in the view's order), event and created
    times as numpy datetime64 (naive UTC, Feast's own conversion of the Arrow column)."""

    keys: list[bytes]
    features: dict[str, online_values.Column]
    event_ts: np.ndarray
    created_ts: np.ndarray | None

    def datetimes(self, stamps: np.ndarray, form: Callable) -> list:
        """``form`` of each time as the datetime Feast converts it to, computed once per
        distinct time (a batch has few)."""
        distinct, index = np.unique(stamps, return_inverse=True)
        formed = [form(pd.Timestamp(t).to_pydatetime()) for t in distinct]
        return [formed[i] for i in index.tolist()]


def join_keys(view) -> dict[str, object]:
    return {e.name: e.dtype.to_value_type() for e in view.entity_columns}


def serialize(
    batch: pa.RecordBatch, view, version: int, keys: list[bytes] | None = None
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
            f.name: online_values.column(
                batch.column(f.name).to_numpy(zero_copy_only=False), f.dtype.to_value_type()
            )
            for f in view.features
        },
        event_ts=times(source.timestamp_field),
        created_ts=times(source.created_timestamp_column)
        if source.created_timestamp_column
        else None,
    )


# -- the engine ------------------------------------------------------------------------------


class PlatformComputeEngineConfig(LocalComputeEngineConfig):
    type: Literal["features.materialization.PlatformComputeEngine"] = ENGINE  # type: ignore[assignment]


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
        keys = online_values.entity_keys(table, join_keys(self.feature_view), version)
        # every row in entity-key order, the order of SQLite's primary key: its B-tree then
        # takes the rows as appends (measured here: 17k keys/s against 13k for rows sorted
        # only within each batch, at 100k keys; the gap grows with the table). Stable: a
        # key's later row stays later, as Feast writes them
        order = sorted(range(len(keys)), key=keys.__getitem__)
        keys = [keys[i] for i in order]
        rows = table.take(pa.array(order, pa.int64())) if table.num_rows else table

        def batches():
            # every batch: Feast's own path keeps only the first chunk when the size is unset
            start = 0
            for batch in rows.to_batches(max_chunksize=size):
                end = start + batch.num_rows
                yield serialize(batch, self.feature_view, version, keys[start:end])
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
    type: Literal["features.materialization.PlatformSqliteOnlineStore"] = SQLITE  # type: ignore[assignment]


class PlatformSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite store; serialized batches go in with Feast's upsert, one transaction."""

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
    columns: list[Iterable] = []
    for name in sorted(rows.features):
        column = rows.features[name]
        columns += [rows.keys, repeat(name), column.values, column.texts(), event, created]
    return zip(*columns, strict=False)  # the repeats are endless, the lists equal


class PlatformRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    type: Literal["features.materialization.PlatformRedisOnlineStore"] = REDIS  # type: ignore[assignment]


class PlatformRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis store; serialized batches go in as Feast's hashes, pipelined."""

    def write_serialized(self, config, table, batches: Iterable[SerializedRows]) -> None:
        for rows in batches:
            self._write_batch(config, table, rows)

    def _write_batch(self, config, table, rows: SerializedRows) -> None:
        from google.protobuf.timestamp_pb2 import Timestamp

        store = config.online_store
        client = self._get_client(store)
        view = compute_versioned_name(table, config.registry.enable_online_feature_view_versioning)
        ts_field = f"_ts:{view}".encode()
        fields = [_mmh3(f"{view}:{name}") for name in rows.features]
        columns = [c.values for c in rows.features.values()]
        project = config.project.encode("utf-8")
        keys = [k + project for k in rows.keys]

        def stamp(moment):
            ts = Timestamp()
            ts.FromDatetime(make_tzaware(moment))
            return ts.SerializeToString(), ts.seconds * 1_000_000_000 + ts.nanos

        stamps = rows.datetimes(rows.event_ts, stamp)
        ttl = store.key_ttl_seconds
        with client.pipeline(transaction=False) as pipe:
            if store.skip_dedup:
                newer = range(len(keys))
            else:
                newer = self._newer(pipe, keys, ts_field, [n for _, n in stamps])
            by_row = list(zip(*columns, strict=True))  # each row's values, feature order
            for i in newer:
                # HSET key _ts:<view> <ts> <field> <value> …, as Feast's hset(mapping=…)
                pairs = chain.from_iterable(zip(fields, by_row[i], strict=True))
                pipe.execute_command("HSET", keys[i], ts_field, stamps[i][0], *pairs)
                if ttl:
                    pipe.expire(name=keys[i], time=ttl)
            pipe.execute()

    @staticmethod
    def _newer(pipe, keys: list[bytes], ts_field: bytes, nanos: list[int]) -> list[int]:
        """The rows to write: Feast's rule, a row overwrites only an older stored row (or
        an older row of the same key earlier in the batch)."""
        from google.protobuf.timestamp_pb2 import Timestamp

        for key in keys:
            pipe.hget(key, ts_field)
        stored: dict[bytes | None, int] = {None: 0}
        latest: dict[bytes, int] = {}
        newer = []
        for i, (key, previous) in enumerate(zip(keys, pipe.execute(), strict=True)):
            if previous not in stored:
                ts = Timestamp()
                ts.ParseFromString(previous)
                stored[previous] = ts.seconds * 1_000_000_000 + ts.nanos
            seen = max(stored[previous], latest.get(key, 0))
            if seen and nanos[i] <= seen:
                continue
            latest[key] = nanos[i]
            newer.append(i)
        return newer
