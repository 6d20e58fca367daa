"""Run the feature transforms on Spark SQL (``DEMAND_ENGINE=spark``): the same tables.

The plan and the SQL are ``plan.py``'s and ``transforms.py``'s; this module holds what
Spark does differently from DuckDB:

- reading the raw parquet (pandas writes nanosecond timestamps, which Spark reads as
  int64 nanoseconds since the epoch: ``spark.sql.legacy.parquet.nanosAsLong``, set by
  ``features/spark.py``) and staging it with period numbers;
- turning periods into timestamps (``timestamp_seconds``, ``date_format``);
- typing the outputs (from the analysed schema, as ``DESCRIBE`` does on DuckDB);
- writing: Spark writes a directory of part files; Feast's FileSource, the ASOF store
  and DuckDB read one file per table, so the part files' row groups are copied into
  ``<table>.parquet`` with the lineage in its key-value metadata.

Everything is written into a directory beside ``feature_dir`` and swapped in only when
every table is complete: a build that fails leaves the previous tables as they were.

Always a full build: the incremental path of ``build_duckdb.py`` digests the staged sales with
DuckDB's ``hash``, which Spark does not have; at the sizes Spark is for, recomputing
the whole purchase table is the cluster's work, not the driver's.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from demand.settings import Engine, Settings
from features import spark as spark_session
from features import transforms as t
from features.plan import (
    MEASURES,
    BuildReport,
    Dialect,
    Plan,
    finish,
    plan_for,
    remove_stale,
)
from features.spark import SparkUnavailable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType

SPARK = Dialect(Engine.spark, "timestamp_seconds({})", "date_format({}, 'yyyy-MM-dd')")
NANOS_PER_DAY = 86_400 * 10**9
FULL = "full (the Spark build computes every table whole)"


def build(
    settings: Settings,
    raw_dir: Path,
    feature_dir: Path,
    progress: Callable[[str], None] | None = None,
    previous: Path | None = None,
    windows: t.Windows | None = None,
) -> BuildReport:
    """Read ``raw_dir/<table>.parquet`` with Spark, write ``feature_dir/<table>.parquet``.

    The same tables, columns, dtypes and lineage as ``build.build`` on DuckDB, with
    ``demand.engine = spark`` in their metadata. Spark must see ``raw_dir`` and
    ``feature_dir`` at the same paths as this process (local mode, or a filesystem
    every executor mounts). Raises :class:`SparkUnavailable` when Spark cannot start,
    read the raw tables or run the build; nothing in ``feature_dir`` changes then.
    """
    plan = plan_for(raw_dir, windows)
    say = progress or (lambda _: None)
    started = time.perf_counter()
    spark = spark_session.session(settings)
    aside = feature_dir.parent / f".{feature_dir.name}.spark"
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir(parents=True)
    views: list[str] = []
    try:
        mode = FULL if previous is not None else "full"
        say(f"{mode} build on Spark ({spark.sparkContext.master})")
        for name in plan.raw_tables:
            views.append(_read_raw(spark, raw_dir / f"{name}.parquet", f"raw_{name}"))
        _guard(lambda: _stage(spark, plan, views), settings.spark_master)
        _guard(lambda: _transform(spark, plan, say, views), settings.spark_master)
        rows = _write_outputs(spark, plan, aside, say, settings.spark_master)
        source = "lines" if plan.order_lines else "sales_daily"
        input_lines = _run(spark, f"SELECT COUNT(*) FROM {source}", settings.spark_master)[0][0]
        feature_dir.mkdir(parents=True, exist_ok=True)
        # every table is whole: swap them in (a rename each, on one filesystem)
        for name in rows:
            (aside / f"{name}.parquet").replace(feature_dir / f"{name}.parquet")
        remove_stale(feature_dir, rows)
    finally:
        for view in reversed(views):  # dependents first; dropping uncaches
            spark.catalog.dropTempView(view)
        shutil.rmtree(aside, ignore_errors=True)
    return BuildReport(rows, time.perf_counter() - started, input_lines, mode)


def _read_raw(spark: SparkSession, path: Path, view: str) -> str:
    try:
        spark.read.parquet(path.resolve().as_uri()).createOrReplaceTempView(view)
    except Exception as error:  # Spark's AnalysisException, or py4j's for a Hadoop error
        raise SparkUnavailable(
            f"Spark cannot read the raw table {path}: {_first_line(error)}. Spark's "
            "driver and executors must all see DEMAND_DATA_DIR at the same path"
        ) from error
    return view


def _run(spark: SparkSession, sql: str, master: str) -> list:
    """Collect a small result; a failing Spark job is a :class:`SparkUnavailable`."""
    return _guard(lambda: spark.sql(sql).collect(), master)


def _guard(action: Callable[[], object], master: str):
    """Run a Spark action; errors of the cluster (not of the SQL) are said in one sentence.

    SQL that Spark cannot analyse is a bug of the build and keeps its traceback.
    """
    from pyspark.errors import AnalysisException, ParseException

    try:
        return action()
    except (AnalysisException, ParseException):
        raise
    except Exception as error:  # py4j, SparkException: an executor, a file, the cluster
        raise SparkUnavailable(
            f"the feature build failed on Spark ({master}): {_first_line(error)}; "
            "the feature tables were left as they were"
        ) from error


def _columns(spark: SparkSession, view: str) -> dict[str, DataType]:
    return {f.name: f.dataType for f in spark.table(view).schema.fields}


def _day(column: str, dtype: DataType) -> str:
    """SQL of the UTC day number (days since 1970-01-01) of a raw date or instant."""
    from pyspark.sql.types import LongType

    if isinstance(dtype, LongType):  # nanoseconds since the epoch; floor division
        return f"CAST(({column} - pmod({column}, {NANOS_PER_DAY})) div {NANOS_PER_DAY} AS INT)"
    return f"datediff(CAST({column} AS DATE), DATE '1970-01-01')"


def _instant(column: str, dtype: DataType) -> str:
    """SQL of a raw instant as a timestamp (microseconds, as DuckDB's TIMESTAMPTZ)."""
    from pyspark.sql.types import LongType

    if isinstance(dtype, LongType):
        return f"timestamp_micros({column} div 1000)"
    return f"CAST({column} AS TIMESTAMP)"


def _or_null(columns: Mapping[str, DataType], column: str, sql_type: str) -> str:
    """The column cast to ``sql_type`` when the raw table has it, else a NULL of that type."""
    value = column if column in columns else "NULL"
    return f"CAST({value} AS {sql_type}) AS {column}"


def _stage(spark: SparkSession, plan: Plan, staged: list[str]) -> None:
    """The inputs ``transforms`` expects, as ``build.stage`` makes them on DuckDB; the
    names of the cached tables made are appended to ``staged``."""
    period = plan.calendar.period_sql

    def cache(name: str, sql: str) -> None:
        spark.sql(f"CACHE TABLE {name} AS {sql}")
        staged.append(name)

    if plan.order_lines:
        raw = _columns(spark, "raw_orders")
        promo = "promo" if "promo" in raw else "FALSE"
        cache(
            "lines",
            f"""SELECT order_id, customer_id, store_id, product_id,
                   {_day("ordered_at", raw["ordered_at"])} AS day,
                   quantity, quantity * unit_price AS revenue, {promo} AS promo
            FROM raw_orders""",
        )
        first_last = "SELECT MIN(day), MAX(day) FROM lines"
    else:
        raw = _columns(spark, "raw_sales")
        # typed NULLs: Spark's analyzer refuses an untyped NULL as a CASE condition
        price = "price" if "price" in raw else "CAST(NULL AS DOUBLE)"
        promo = "promo" if "promo" in raw else "CAST(NULL AS BOOLEAN)"
        cache(
            "sales_daily",
            f"""SELECT store_id, product_id, {period(_day("date", raw["date"]))} AS day,
                   CAST(units AS DOUBLE) AS units,
                   CAST(units * {price} AS DOUBLE) AS revenue,
                   CAST(CASE WHEN {price} IS NOT NULL THEN units END AS DOUBLE) AS priced_units,
                   CASE WHEN {promo} THEN 1 ELSE 0 END AS promo,
                   {t.stockout_sql("on_hand" in raw, "stockout" in raw)} AS stockout,
                   {t.listed_sql("active" in raw)} AS listed
            FROM raw_sales""",
        )
        first_last = "SELECT MIN(day), MAX(day) FROM sales_daily"
    products = _columns(spark, "raw_products")
    cache(
        "products",
        f"""SELECT product_id, category, {_or_null(products, "lifespan_days", "DOUBLE")},
               {_or_null(products, "list_price", "DOUBLE")}
        FROM raw_products""",
    )
    stores = _columns(spark, "raw_stores")
    coordinates = ", ".join(_or_null(stores, c, "DOUBLE") for c in ("latitude", "longitude"))
    cache("stores", f"SELECT store_id, region_id, {coordinates} FROM raw_stores")
    observed = _columns(spark, "raw_weather_observed")
    measures = ", ".join(_or_null(observed, m, "DOUBLE") for m in MEASURES)
    cache(
        "weather_observed",
        f"""SELECT region_id, {_day("date", observed["date"])} AS day, {measures}
        FROM raw_weather_observed""",
    )
    if plan.forecasts:
        raw = _columns(spark, "raw_weather_forecast")
        measures = ", ".join(_or_null(raw, m, "DOUBLE") for m in MEASURES)
        cache(
            "weather_forecast",
            f"""SELECT region_id, {_day("issued_at", raw["issued_at"])} AS issue_day,
                   {_instant("issued_at", raw["issued_at"])} AS issued_at,
                   {_day("valid_date", raw["valid_date"])} AS valid_day, {measures}
            FROM raw_weather_forecast""",
        )
    if plan.promotions:
        raw = _columns(spark, "raw_promotions")
        cache(
            "plans",
            f"""SELECT store_id, product_id, {period(_day("date", raw["date"]))} AS day,
                   {_or_null(raw, "promo", "BOOLEAN")}, {_or_null(raw, "price", "DOUBLE")},
                   {_instant("planned_at", raw["planned_at"])} AS planned_at
            FROM raw_promotions""",
        )
    if plan.assortment:
        raw = _columns(spark, "raw_assortment")
        cache(
            "assortment",
            f"""SELECT store_id, product_id,
                   {period(_day("listed_from", raw["listed_from"]))} AS from_day,
                   {period(_day("listed_to", raw["listed_to"]))} AS to_day
            FROM raw_assortment""",
        )
    first, last = spark.sql(first_last).collect()[0]
    spark.range(first, last + 1).selectExpr("CAST(id AS INT) AS day").createOrReplaceTempView(
        "periods"
    )
    spark.catalog.cacheTable("periods")
    staged.append("periods")


def _transform(
    spark: SparkSession, plan: Plan, say: Callable[[str], None], made: list[str]
) -> None:
    """Every intermediate relation, in order: cached tables, or views where DuckDB streams
    (their names appended to ``made``)."""
    w = plan.w
    for name, sql in plan.steps():
        name = name.replace("SHORT", str(w.short)).replace("LONG", str(w.long))
        started = time.perf_counter()
        if name in plan.streamed:
            spark.sql(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql(w)}")
        else:
            # CACHE TABLE runs the query now (as DuckDB's CREATE TABLE): later steps read
            # it instead of recomputing its lineage each time
            spark.sql(f"CACHE TABLE {name} AS {sql(w)}")
            say(f"{name} ({time.perf_counter() - started:.1f}s)")
        made.append(name)


def _finish(spark: SparkSession, name: str, sql: str) -> DataFrame:
    from pyspark.sql.types import (
        ByteType,
        DecimalType,
        IntegerType,
        LongType,
        NullType,
        ShortType,
    )

    exact = (ByteType, ShortType, IntegerType, LongType, DecimalType, NullType)
    # the analysed schema, as DESCRIBE on DuckDB: nothing runs here
    columns = [(f.name, isinstance(f.dataType, exact)) for f in spark.sql(sql).schema.fields]
    return spark.sql(finish(name, sql, columns))


def _write_outputs(
    spark: SparkSession,
    plan: Plan,
    aside: Path,
    say: Callable[[str], None],
    master: str,
) -> dict[str, int]:
    rows = {}
    for name, sql in plan.outputs(SPARK).items():
        started = time.perf_counter()
        parts = aside / "parts" / name
        frame = _finish(spark, name, sql)
        _guard(partial(frame.write.mode("overwrite").parquet, parts.resolve().as_uri()), master)
        rows[name] = _single_file(
            parts, aside / f"{name}.parquet", plan.metadata(name, Engine.spark)
        )
        shutil.rmtree(parts)
        say(f"{name}.parquet: {rows[name]:,} rows ({time.perf_counter() - started:.1f}s)")
    return rows


def _single_file(parts: Path, target: Path, metadata: Mapping[str, str]) -> int:
    """Copy the row groups of Spark's part files into one parquet file; its row count.

    One row group in memory at a time. Every column is written nullable (which columns
    an engine marks required differs: Spark marks join keys, DuckDB what it proves).
    """
    files = sorted(parts.glob("part-*.parquet"))
    if not files:
        raise SparkUnavailable(f"Spark wrote no part file into {parts}")
    schema = pq.read_schema(files[0])
    schema = pa.schema([f.with_nullable(True) for f in schema], metadata=dict(metadata))
    count = 0
    with pq.ParquetWriter(target, schema, store_schema=True) as writer:
        for path in files:
            part = pq.ParquetFile(path)
            for group in range(part.num_row_groups):
                table = part.read_row_group(group)
                writer.write_table(pa.Table.from_arrays(table.columns, schema=schema))
                count += table.num_rows
    return count


def _first_line(error: BaseException) -> str:
    """What went wrong, in a line: py4j's own message names only the call that failed,
    so a Java exception is told by its root cause."""
    java = getattr(error, "java_exception", None)
    if java is not None:
        while java.getCause() is not None:
            java = java.getCause()
        text = str(java.toString()).strip()
    else:
        text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
