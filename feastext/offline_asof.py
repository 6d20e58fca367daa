"""A Feast offline store whose point-in-time join is DuckDB's ``ASOF JOIN``.

Feast's DuckDB store joins every feature row at or before each entity row (within
the TTL), then keeps the newest per entity row with a window over the whole join:
2.1× a ``pandas.merge_asof`` at 1 M entity rows. The newest feature row at or before
the entity time is the only candidate Feast can keep, so an ASOF join that finds it
directly gives the same answer, and the TTL can be applied after the join (a row too
old means every older one is too). Created-timestamp ties are broken inside the ASOF
key: the join orders on (event time, created time), a missing created time first, as
Feast's ``ORDER BY event DESC, created DESC`` (nulls last) does.

The platform's offline store (``DEMAND_OFFLINE_STORE=asof``, the default; ``duckdb``
is Feast's own). Only ``get_historical_features`` over single local parquet files takes
this path; everything else (materialization, other sources, a folder of files,
``filter_by_created_timestamp``, an entity SQL query) is Feast's DuckDB store.

At scale (10 M entity rows × 7 views) the join carries keys, times and the matched row's
position in the file only, once per distinct (keys, time), and the values are taken by
position; DuckDB works within ``DEMAND_DUCKDB_MEMORY_LIMIT``, spilling beyond it, and the
result goes to pandas column by column (docs/benchmarks.md). The file's identity (device,
inode, size, mtime) is compared across its two reads, and the view read again when a
build swapped it in between: row numbers of one file never fetch another's values.

Relies on (checked against feast 0.67.0, ibis-framework 12.0.0, duckdb 2.0.1):
- ``feast.infra.offline_stores.ibis._to_utc`` and ``IbisRetrievalJob``'s private
  ``_to_arrow_internal``/``_to_df_internal`` hooks;
- ``feast.infra.offline_stores.offline_utils`` (entity frame checks, the feature name
  rules) and ``DuckDBOfflineStore`` for every path it does not take;
- ibis's DuckDB backend connection (``ibis.get_backend().con``) and its
  ``DuckDBPyArrowData`` converter.
tests/feastext/test_offline_asof.py compares its training sets with Feast's DuckDB store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from feast.data_format import ParquetFormat
from feast.feature_view import FeatureView
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _write_data_source,
)
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.ibis import IbisRetrievalJob, _to_utc
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from ibis.backends.duckdb.converter import DuckDBPyArrowData

from demand.console import UserError

TYPE = "feastext.offline_asof.AsofDuckDBOfflineStore"
ROW = "__asof_row"  # the entity row's position: the result comes back in entity order


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: Literal["feastext.offline_asof.AsofDuckDBOfflineStore"] = TYPE
    # DuckDB's memory_limit and temp_directory for the joins (DEMAND_DUCKDB_MEMORY_LIMIT):
    # at 10 M entity rows the joins' sorts spill there instead of taking the machine
    memory_limit: str | None = None
    temp_directory: str | None = None


class AsofRetrievalJob(IbisRetrievalJob):
    """Feast's ibis job over a result computed as an Arrow table, when it is asked for.

    ``to_arrow`` converts the table as ibis would after running it (the same types as the
    stock store's) without handing it back to DuckDB first: that round trip copied the
    whole result (2.7 s of 8.4 s at 1 M entity rows, measured). ``to_df`` releases each
    Arrow column once pandas holds it, so the two copies of a result never sit side by
    side (at 10 M entity rows each is about 4.5 GB).
    """

    def __init__(self, compute: Callable[[], pa.Table], **kwargs) -> None:
        super().__init__(None, **kwargs)  # no ibis table unless persist asks for one
        self._compute = compute

    def _arrow(self) -> pa.Table:
        result = self._compute()
        schema = ibis.Schema.from_pyarrow(result.schema)  # what ibis.memtable infers
        return DuckDBPyArrowData.convert_table(result, schema)

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._arrow()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._arrow().to_pandas()

    def to_df(self, validation_reference=None, timeout: int | None = None) -> pd.DataFrame:
        table = self.to_arrow(validation_reference=validation_reference, timeout=timeout)
        # already on a fresh RangeIndex: Feast's reset_index(drop=True) copied the whole frame
        # (3.3 of the 5.8 GiB peak at 3 M entity rows, and 15 of 45 s, measured)
        return table.to_pandas(self_destruct=True, split_blocks=True)

    def persist(self, storage, allow_overwrite: bool = False, timeout: int | None = None):
        self.table = ibis.memtable(self._arrow())
        try:
            super().persist(storage, allow_overwrite, timeout)
        finally:
            self.table = None

    def supports_remote_storage_export(self) -> bool:
        return False  # IbisRetrievalJob's export reads self.table, which this job lacks


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_parquet(view: FeatureView) -> bool:
    source = view.batch_source
    return (
        isinstance(source, FileSource)
        and (
            isinstance(source.file_format, ParquetFormat)
            or (source.file_format is None and source.path.endswith(".parquet"))
        )
        and "://" not in source.path
        # one file: the join finds rows by their position in it
        and Path(source.path).is_file()
    )


class _ViewJoin(NamedTuple):
    """The ASOF join of one view onto the entity rows (``e``), and what it returns."""

    join: str  # the ASOF LEFT JOIN clause; the view's side is ``alias``
    fresh: str  # true where the joined row is within the view's TTL
    alias: str
    on: list[str]  # the entity columns the view is joined on: its keys and the entity time
    path: str  # the view's parquet
    values: dict[str, str]  # output column → its expression on the parquet's columns


def _view_join(
    view: FeatureView,
    refs: list[str],
    full_feature_names: bool,
    i: int,
    ts: str,
    times: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> _ViewJoin:
    """The join of ``view``; ``times``: the first and last entity time, when known."""
    source = view.batch_source
    prefix = view.projection.name_to_use()
    features = [r.split(":")[1] for r in refs if r.startswith(f"{prefix}:")]
    base = view.projection.name_alias or view.name
    # the source's columns under the view's names (Feast renames field_mapping the same way)
    renamed = {new: old for old, new in source.field_mapping.items()}
    keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
    event = source.timestamp_field
    created = source.created_timestamp_column
    alias = f"f{i}"

    def column(name: str) -> str:
        return _quote(renamed.get(name, name))

    event_time = f"CAST({column(event)} AS TIMESTAMPTZ)"
    entity_time = f"CAST(e.{_quote(ts)} AS TIMESTAMPTZ)"
    if created:
        # the newest (event, created) at or before the entity time; a missing created
        # time ranks below any other, and any created time is within the entity's instant
        created_time = f"coalesce(CAST({column(created)} AS TIMESTAMPTZ), '-infinity')"
        key = f"{{'t': {event_time}, 'c': {created_time}}}"
        entity_key = f"{{'t': {entity_time}, 'c': 'infinity'::TIMESTAMPTZ}}"
    else:  # a plain timestamp key: a struct key costs more in the join
        key, entity_key = event_time, entity_time
    ttl = view.ttl
    expires = ttl is not None and ttl.total_seconds() > 0
    micros = ttl // pd.Timedelta(microseconds=1) if expires else 0
    # Rows no entity row can take are left out of the join, which sorts the rest: those
    # after the last entity time (never at or before one), and those that expire before the
    # first (never fresh; the freshness test below, on the first time). A backtest window
    # of weeks joins weeks of a view of years
    where = ""
    if times is not None and not any(pd.isna(t) for t in times):
        first, last = times[0].floor("us").isoformat(), times[1].ceil("us").isoformat()
        bounds = [f"{event_time} <= {_literal(last)}::TIMESTAMPTZ"]
        if expires:
            bounds.append(
                f"{event_time} + to_microseconds({micros}) >= {_literal(first)}::TIMESTAMPTZ"
            )
        where = f" WHERE {' AND '.join(bounds)}"
    selected = [f"{column(k)} AS {_quote(k)}" for k in keys]
    # the row's position in the file: the join carries it instead of the feature values,
    # which are taken by position afterwards (a narrow join sorts less)
    table = (
        f"(SELECT {', '.join(selected)}, {event_time} AS _ts, {key} AS _key, "
        f"file_row_number AS _row FROM read_parquet({_literal(source.path)}, "
        f"file_row_number = true){where})"
    )
    on = [f"e.{_quote(entity)} = {alias}.{_quote(k)}" for k, entity in keys.items()]
    on.append(f"{entity_key} >= {alias}._key")
    join = f"ASOF LEFT JOIN {table} AS {alias} ON {' AND '.join(on)}"

    fresh = "TRUE"
    if expires:
        # Feast keeps a row while event + ttl >= entity time: the boundary is inclusive
        fresh = f"{alias}._ts + to_microseconds({micros}) >= {entity_time}"
    values = {
        (f"{base}__{feature}" if full_feature_names else feature): column(feature)
        for feature in features
    }
    return _ViewJoin(join, fresh, alias, [*keys.values(), ts], source.path, values)


def _joined(connection, entities: str, n: int, view: _ViewJoin) -> pa.Table:
    """The view's values for the ``n`` entity rows, in entity order (nulls where no row is
    fresh): the join finds each entity row's file row, a take fetches the values.

    The file is read twice, and a feature build may swap it in between (a nightly beside a
    `demand train`): row numbers of one file would then fetch another file's values. So
    the file's identity is taken before the first read and after the second, and the
    view is read again when it changed (a swap takes a moment; a build swaps once).
    """
    for _ in range(READ_ATTEMPTS):
        before = _identity(view.path)
        rows = _matched_rows(connection, entities, view)
        values = _values_at(connection, entities, view, rows)
        if _identity(view.path) == before:
            break
    else:
        raise UserError(
            f"{view.path} was replaced while a training set read it, {READ_ATTEMPTS} times in "
            "a row (a feature build swapping tables in?); run again once the build has finished"
        )
    # a scatter into entity order (the join returns its rows in no set order): linear,
    # where ORDER BY sorted every value column again; null where no row matched
    at = np.full(n, -1, dtype=np.int64)
    at[values[ROW].to_numpy()] = np.arange(values.num_rows)
    return values.drop_columns([ROW]).take(pa.array(at, mask=at < 0))


READ_ATTEMPTS = 3


def _identity(path: str) -> tuple[int, int, int, int]:
    """What changes when a file is replaced or rewritten: device, inode, size, mtime."""
    found = os.stat(path)
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def _matched_rows(connection, entities: str, view: _ViewJoin) -> pa.Table:
    """The first read: each entity row (``e``) and its fresh file row (``f``, else null)."""
    # Joined once per distinct (keys, time), then back to every entity row by a hash join:
    # entity rows repeat a view's keys and time (horizons of one origin, the stores of one
    # region), and the ASOF join sorts what it is given (1 M entity rows: 1.5 s a view).
    on = ", ".join(_quote(c) for c in view.on)
    same = " AND ".join(f"e.{_quote(c)} IS NOT DISTINCT FROM d.{_quote(c)}" for c in view.on)
    return connection.sql(
        f"WITH d AS (SELECT e.*, CASE WHEN {view.fresh} THEN {view.alias}._row END AS f "
        f"FROM (SELECT DISTINCT {on} FROM {entities}) AS e {view.join}) "
        f"SELECT e.{ROW} AS e, d.f FROM {entities} AS e LEFT JOIN d ON {same}"
    ).to_arrow_table()


def _values_at(connection, entities: str, view: _ViewJoin, rows: pa.Table) -> pa.Table:
    """The second read: the matched file rows' values, with their entity row (``ROW``)."""
    # Only the matched file rows' values, found by their position as DuckDB streams the
    # file: taking them from the whole file read into memory held every row of the view
    # whatever the entity rows (the M5 sales view: 33.6 M rows; with the join of whole
    # views, 4.9 of 5.5 GiB for 46 k entity rows, measured)
    matched = f"{entities}_matched_{view.alias}"
    connection.register(matched, rows.filter(rows["f"].is_valid()))
    try:
        listed = ", ".join(f"v.{value} AS {_quote(name)}" for name, value in view.values.items())
        return connection.sql(
            f"SELECT m.e AS {ROW}, {listed} FROM {matched} AS m "
            f"JOIN read_parquet({_literal(view.path)}, file_row_number = true) AS v "
            "ON v.file_row_number = m.f"
        ).to_arrow_table()
    finally:
        connection.unregister(matched)


def _bound(connection, store: AsofDuckDBOfflineStoreConfig) -> None:
    """Set the configured memory limit and spill folder on ``connection``.

    The connection is ibis's default one, which Feast's DuckDB store also reads with, so
    the limit holds for both stores in this process."""
    # DuckDB's default (the values are found by their file row number, which does not
    # depend on it; the connection is shared with the stock store)
    connection.execute("SET preserve_insertion_order = true")
    if store.memory_limit:
        connection.execute(f"SET memory_limit = {_literal(store.memory_limit)}")
    if store.temp_directory:
        connection.execute(f"SET temp_directory = {_literal(store.temp_directory)}")


def _retrieve(
    store: AsofDuckDBOfflineStoreConfig,
    entity_df: pd.DataFrame,
    feature_views: list[FeatureView],
    feature_refs: list[str],
    full_feature_names: bool,
    ts: str,
) -> pa.Table:
    """The entity rows, in their order, with every requested feature beside them."""
    # On the connection Feast's DuckDB store reads with: its settings, such as the session
    # time zone, are the stock store's. (ibis's Backend.sql would keep it lazy, but it
    # calls a DuckDB method that DuckDB 2 no longer has.)
    connection = ibis.get_backend().con
    _bound(connection, store)
    entities = f"_asof_entities_{uuid.uuid4().hex}"
    frame = f"{entities}_frame"
    connection.register(frame, entity_df.assign(**{ROW: range(len(entity_df))}))
    try:
        # Copied into DuckDB once: each view's join reading the pandas frame again
        # converted its Python strings again (1.7 s a view at 1 M rows, measured).
        connection.execute(f"CREATE TEMP TABLE {entities} AS SELECT * FROM {frame}")
        connection.unregister(frame)
        listed = ", ".join(_quote(c) for c in entity_df.columns)
        result = connection.sql(f"SELECT {listed} FROM {entities} ORDER BY {ROW}").to_arrow_table()
        # One join per view over the entity keys and time only, its columns set beside the
        # others in entity order: chaining the joins would sort every entity column again
        # at each view (join 11.9 s against 6.6 s at 1 M rows, measured).
        stamps = pd.to_datetime(entity_df[ts], utc=True)
        times = (stamps.min(), stamps.max())
        for i, view in enumerate(feature_views):
            join = _view_join(view, feature_refs, full_feature_names, i, ts, times)
            if not join.values:
                continue
            part = _joined(connection, entities, len(entity_df), join)
            for name, values in zip(part.column_names, part.columns, strict=True):
                result = result.append_column(name, values)
    finally:
        connection.unregister(frame)
        connection.execute(f"DROP TABLE IF EXISTS {entities}")
    return result


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        # The created-time cutoff can skip the newest row for an older one: not an ASOF join.
        if (
            filter_by_created_timestamp
            or not isinstance(entity_df, pd.DataFrame)
            or not all(_is_parquet(v) for v in feature_views)
        ):
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        ts = offline_utils.infer_event_timestamp_from_entity_df(schema)
        entity_df = _to_utc(entity_df, ts)
        # the same range Feast's DuckDB store reports (it reads the column as it is)
        stamps = pd.to_datetime(entity_df[ts], utc=True)
        entity_columns = list(entity_df.columns)

        compute = partial(
            _retrieve,
            config.offline_store,
            entity_df,
            feature_views,
            feature_refs,
            full_feature_names,
            ts,
        )

        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        arguments = dict(
            on_demand_feature_views=[v for v in odfvs if v.mode != "substrait"],
            full_feature_names=full_feature_names,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=list(set(entity_columns) - {ts}),
                min_event_timestamp=stamps.min(),
                max_event_timestamp=stamps.max(),
            ),
            data_source_writer=_write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
            repo_path=str(config.repo_path),
        )
        substrait = [v for v in odfvs if v.mode == "substrait"]
        if not substrait:
            return AsofRetrievalJob(compute, **arguments)
        table = ibis.memtable(compute())  # ibis transforms: the result goes back through DuckDB
        for odfv in substrait:
            table = odfv.transform_ibis(table, full_feature_names)
        return IbisRetrievalJob(table, **arguments)
