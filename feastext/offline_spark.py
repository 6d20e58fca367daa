"""Feast's Spark offline store over the platform's parquet feature tables (``DEMAND_ENGINE=spark``).

The feature repo declares ``FileSource``s, which every engine reads; Feast's Spark store
accepts only ``SparkSource``s. This store hands each view to Feast's as the equivalent
``SparkSource`` (the same path, parquet, timestamp and created columns, field mapping), so
the registry and the definitions stay identical whichever engine runs: the choice is
configuration (:func:`demand.featurestore.open_store` renders this store's type when
``settings.engine`` is spark).

Around Feast's store (alpha in Feast 0.67), what the platform needs that it does not do:

- the session is :func:`features.spark.session`'s, started from the settings the config
  carries (master, ``DEMAND_SPARK_CONF``), before Feast could make one of its own;
- training sets come back in entity order (Feast's join returns its rows in no set order)
  and as Arrow read from Spark, the types the ASOF store returns (Feast's own job goes
  through ``toPandas``, which hands every time back naive);
- the caller's entity frame is left as it was (Feast's upload rewrites its time column);
- a row's id in the join is its keys and time as a JSON array, where Feast concatenates
  them: store "1" with product "23" and store "12" with product "3" were one id, and each
  got both rows (:func:`unambiguous_ids`);
- a null created time ranks below any other, as in the DuckDB stores (:func:`spark_source`);
- materialization reads each key's latest row on Spark and hands it over as Arrow, to the
  engine of ``materializing`` stores (feastext/materialization.py).
- the entity frame reaches Spark as a parquet file in ``staging_dir`` (the platform's is
  ``DATA_DIR/spark/entities``), read by the executors, where Feast's upload
  (``createDataFrame``) serialized it into the query's tasks: Spark warned of a 2.9 MB task
  at 12k rows, and a million rows made tasks of hundreds of MB (:func:`staged_entities`).
  On a cluster the executors read that path themselves: DATA_DIR must be storage every
  worker sees at the same path (NFS, a shared volume), as it already must be for the
  Spark feature build, which reads and writes its tables there.

Relies on (checked against feast 0.67.0, pyspark 4.3.0):
- Feast's Spark offline store and its retrieval job's private ``_to_arrow_internal`` /
  ``_to_df_internal`` hooks;
- the Spark store module's private ``_upload_entity_df(spark_session, table_name,
  entity_df, event_timestamp_col)``, the one place Feast turns a pandas entity frame into a
  Spark view (replaced by one that reads the staged parquet; everything else, the
  frame's schema and time range, stays Feast's, computed from the pandas frame);
- the text of the Spark SQL Feast generates: ``_ROW_ID`` rewrites its entity row id
  (a regex over Feast's query, the one place that breaks first when Feast changes it).
tests/spark/test_feast_spark.py compares its training sets with DuckDB's.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import io
import os
import re
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.contrib.spark_offline_store import spark as feast_spark
from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
    SparkOfflineStore,
    SparkOfflineStoreConfig,
    SparkRetrievalJob,
)
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.repo_config import RepoConfig

TYPE = "feastext.offline_spark.SparkFileOfflineStore"
ROW = "__spark_row"  # the entity row's position: the result comes back in entity order


class SparkFileOfflineStoreConfig(SparkOfflineStoreConfig):
    type: Literal["feastext.offline_spark.SparkFileOfflineStore"] = TYPE  # type: ignore[assignment]
    # where the session runs (DEMAND_SPARK_MASTER); ``spark_conf`` is DEMAND_SPARK_CONF
    master: str = "local[*]"
    # where entity frames are staged as parquet for the executors to read (None: a
    # directory under the system's temporary one, which only a local session can read)
    staging_dir: str | None = None


def session(store: SparkOfflineStoreConfig):
    """The process's Spark session, as :func:`features.spark.session` starts it."""
    from demand.settings import Engine, Settings
    from features import spark

    master = getattr(store, "master", "local[*]")
    settings = Settings(engine=Engine.spark, spark_master=master, spark_conf=store.spark_conf or {})
    active = spark.session(settings)
    # pandas frames cross into Spark through Arrow: naive times are read in the session's
    # time zone (UTC), not the Python process's, and a million rows take seconds, not minutes
    active.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    return active


CREATED = "__demand_created"  # the created time, a null one ranked below any other


def spark_source(source: DataSource) -> DataSource:
    """A parquet ``FileSource`` as the ``SparkSource`` reading the same rows; others as they are.

    With a created timestamp column, the source is a query adding that time with nulls as
    the earliest instant, and the join orders on it: Feast's Spark join keeps, per event
    time, the rows equal to ``MAX(created)``, so a row whose created time is null (the only
    row of its event time) matched nothing and its features came back null, where the
    DuckDB stores rank a null created time below any other and keep the row. (With
    ``filter_by_created_timestamp``, which the platform does not use, such a row therefore
    passes the cutoff, where Feast's DuckDB store drops it.)
    """
    if not isinstance(source, FileSource):
        return source
    path = source.path
    if not (
        isinstance(source.file_format, ParquetFormat)
        or (source.file_format is None and path.endswith(".parquet"))
    ):
        raise ValueError(
            f"the Spark offline store reads parquet feature tables; {source.name} is {path}"
        )
    where: dict[str, str] = {"path": path, "file_format": "parquet"}
    created = source.created_timestamp_column or None
    if created:
        column = "`" + created.replace("`", "``") + "`"
        table = "parquet.`" + path.replace("`", "``") + "`"
        earliest = "TIMESTAMP '0001-01-01 00:00:00'"
        where = {"query": f"SELECT *, coalesce({column}, {earliest}) AS {CREATED} FROM {table}"}
        created = CREATED
    with warnings.catch_warnings():  # "an experimental feature in alpha development"
        warnings.simplefilter("ignore", RuntimeWarning)
        return SparkSource(
            name=source.name,
            **where,
            timestamp_field=source.timestamp_field,
            created_timestamp_column=created,
            field_mapping=dict(source.field_mapping),
            date_partition_column=source.date_partition_column or None,
            description=source.description,
            tags=dict(source.tags),
            owner=source.owner,
        )


def on_spark(view: FeatureView) -> FeatureView:
    """``view`` (its projection too) reading its batch source through Spark."""
    if not isinstance(view.batch_source, FileSource):
        return view
    moved = copy.copy(view)
    moved.batch_source = spark_source(view.batch_source)
    return moved


# Feast's template: CONCAT(CAST(k1 AS STRING), …, CAST(ts AS STRING))
#   AS <view>__entity_row_unique_id
_ROW_ID = re.compile(r"CONCAT\(([^;]*?)\)\s+AS\s+(\w+__entity_row_unique_id)", re.DOTALL)


def unambiguous_ids(query: str) -> str:
    """Feast's point-in-time query with each row id an array of its parts, as JSON."""
    rewritten, count = _ROW_ID.subn(r"TO_JSON(ARRAY(\1)) AS \2", query)
    if count == 0 and "__entity_row_unique_id" in query:
        raise RuntimeError(
            "Feast's Spark point-in-time query changed shape: its row ids could not be made "
            "unambiguous (feastext/offline_spark.py)"
        )
    return rewritten


@contextlib.contextmanager
def _quiet():
    """Feast's Spark store warns it is alpha on every call and prints what it pulls."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


STAGED_STALE_S = 24 * 3600  # a staged frame this old was left by a process that died

# the staging directory of the get_historical_features call running in this context
_staging: contextvars.ContextVar[Path | None] = contextvars.ContextVar("staging", default=None)
# the files staged in this context, handed to the job that reads them
_staged: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("staged", default=None)


def staging_dir(store: SparkOfflineStoreConfig) -> Path:
    configured = getattr(store, "staging_dir", None)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "demand-spark-entities"


def staged_entities(spark_session, frame: pd.DataFrame, event_timestamp_col: str, where: Path):
    """``frame`` written to a parquet file in ``where`` and read back as a Spark frame.

    The times as Feast's upload makes them: the event time as UTC, naive times read in the
    session's time zone (UTC), microseconds (what Spark keeps). Staged files older than
    :data:`STAGED_STALE_S` (a process that died before its job read them) are removed.
    """
    where.mkdir(parents=True, exist_ok=True)
    for old in where.glob("entities-*.parquet"):
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STAGED_STALE_S:
                old.unlink()
    frame = frame.copy()
    frame[event_timestamp_col] = pd.to_datetime(frame[event_timestamp_col], utc=True)
    for name in frame.columns:
        if pd.api.types.is_datetime64_dtype(frame[name]) and frame[name].dt.tz is None:
            frame[name] = frame[name].dt.tz_localize("UTC")
    path = where / f"entities-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, coerce_timestamps="us", allow_truncated_timestamps=True)
    return spark_session.read.parquet(str(path)), path


_feast_upload = feast_spark._upload_entity_df


def _upload_entity_df(spark_session, table_name, entity_df, event_timestamp_col) -> None:
    """Feast's upload, but a pandas frame of a :class:`SparkFileOfflineStore` call is staged
    as parquet (:func:`staged_entities`) instead of being shipped inside the tasks."""
    where, staged = _staging.get(), _staged.get()
    if where is None or staged is None or not isinstance(entity_df, pd.DataFrame):
        _feast_upload(spark_session, table_name, entity_df, event_timestamp_col)
        return
    frame, path = staged_entities(spark_session, entity_df, event_timestamp_col, where)
    staged.append(path)
    frame.createOrReplaceTempView(table_name)


def _stage_entities_from_parquet() -> None:
    """Route Feast's entity upload through :func:`_upload_entity_df` (once; idempotent)."""
    if feast_spark._upload_entity_df is not _upload_entity_df:
        feast_spark._upload_entity_df = _upload_entity_df


class SparkArrowRetrievalJob(SparkRetrievalJob):
    """Feast's Spark job whose result comes back as Spark's Arrow, in entity order.

    ``ordered``: the query carries :data:`ROW`; the result is sorted by it, without it.
    ``staged``: the entity frame's parquet files, removed once the result has been read
    (the platform reads a training set's job once).
    """

    def __init__(self, *args, ordered: bool = False, staged=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ordered = ordered
        self._staged = list(staged)

    def to_spark_df(self):
        frame = super().to_spark_df()
        if self._ordered:
            frame = frame.orderBy(ROW).drop(ROW)
        return frame

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        if self._should_use_staging_for_arrow():  # a staging_location: Feast's export
            table = super()._to_arrow_internal(timeout)
        else:
            table = self.to_spark_df().toArrow()
        for path in self._staged:
            path.unlink(missing_ok=True)
        return table

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()


def _arrow_job(job: SparkRetrievalJob, ordered: bool = False, staged=()) -> SparkArrowRetrievalJob:
    return SparkArrowRetrievalJob(
        spark_session=job.spark_session,
        query=unambiguous_ids(job.query),
        full_feature_names=job.full_feature_names,
        config=job._config,
        on_demand_feature_views=job.on_demand_feature_views,
        metadata=job._metadata,
        ordered=ordered,
        staged=staged,
    )


class SparkFileOfflineStore(SparkOfflineStore):
    """Feast's Spark offline store, taking the platform's ``FileSource``s as ``SparkSource``s."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df,
        registry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs,
    ) -> RetrievalJob:
        session(config.offline_store)
        ordered = isinstance(entity_df, pd.DataFrame)
        if ordered:
            if ROW in entity_df.columns:
                raise ValueError(f"the entity frame may not have a column named {ROW}")
            # a copy: Feast's upload rewrites the frame's time column in place
            entity_df = entity_df.assign(**{ROW: range(len(entity_df))})
        _stage_entities_from_parquet()
        staged: list[Path] = []
        where = _staging.set(staging_dir(config.offline_store))
        into = _staged.set(staged)
        try:
            with _quiet():
                job = SparkOfflineStore.get_historical_features(
                    config,
                    [on_spark(v) for v in feature_views],
                    feature_refs,
                    entity_df,
                    registry,
                    project,
                    full_feature_names,
                    filter_by_created_timestamp,
                    **kwargs,
                )
        except BaseException:
            for path in staged:
                path.unlink(missing_ok=True)
            raise
        finally:
            _staged.reset(into)
            _staging.reset(where)
        return _arrow_job(job, ordered, staged)

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig, data_source: DataSource, *args, **kwargs
    ):
        session(config.offline_store)
        with _quiet():
            job = SparkOfflineStore.pull_latest_from_table_or_query(
                config, spark_source(data_source), *args, **kwargs
            )
        return _arrow_job(job)

    @staticmethod
    def pull_all_from_table_or_query(config: RepoConfig, data_source: DataSource, *args, **kwargs):
        session(config.offline_store)
        with _quiet():
            job = SparkOfflineStore.pull_all_from_table_or_query(
                config, spark_source(data_source), *args, **kwargs
            )
        return _arrow_job(job)
