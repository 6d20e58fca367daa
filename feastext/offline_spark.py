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

Relies on (checked against feast 0.67.0, pyspark 4.3.0):
- Feast's Spark offline store and its retrieval job's private ``_to_arrow_internal`` /
  ``_to_df_internal`` hooks;
- the text of the Spark SQL Feast generates: ``_ROW_ID`` rewrites its entity row id
  (a regex over Feast's query, the one place that breaks first when Feast changes it).
tests/spark/test_feast_spark.py compares its training sets with DuckDB's.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import warnings
from typing import Literal

import pandas as pd
import pyarrow as pa
from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.feature_view import FeatureView
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


class SparkArrowRetrievalJob(SparkRetrievalJob):
    """Feast's Spark job whose result comes back as Spark's Arrow, in entity order.

    ``ordered``: the query carries :data:`ROW`; the result is sorted by it, without it.
    """

    def __init__(self, *args, ordered: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ordered = ordered

    def to_spark_df(self):
        frame = super().to_spark_df()
        if self._ordered:
            frame = frame.orderBy(ROW).drop(ROW)
        return frame

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        if self._should_use_staging_for_arrow():  # a staging_location: Feast's export
            return super()._to_arrow_internal(timeout)
        return self.to_spark_df().toArrow()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()


def _arrow_job(job: SparkRetrievalJob, ordered: bool = False) -> SparkArrowRetrievalJob:
    return SparkArrowRetrievalJob(
        spark_session=job.spark_session,
        query=unambiguous_ids(job.query),
        full_feature_names=job.full_feature_names,
        config=job._config,
        on_demand_feature_views=job.on_demand_feature_views,
        metadata=job._metadata,
        ordered=ordered,
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
        return _arrow_job(job, ordered)

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
