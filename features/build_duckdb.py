"""Run a feature build plan on DuckDB: raw parquet in, offline feature tables out.

What is DuckDB-specific lives here: how raw files become relations with period numbers,
how outputs are typed and written (one parquet file each, with the plan's lineage in its
metadata), and the incremental build of the purchase table from an earlier build's.
The plan itself is ``plan.py``; ``build_spark.py`` runs the same plan on Spark.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import pandas as pd

from demand.calendar import RawDescription
from demand.settings import Engine
from features import transforms as t
from features.plan import (
    DAILY,
    INCREMENTAL_FORMAT,
    MEASURES,
    META_ABSENT,
    META_DEFINITION,
    META_ENGINE,
    META_SALES_DIGEST,
    META_THROUGH,
    BuildReport,
    Plan,
    finish,
    grid_start,
    known_at,
    period_start,
    plan_for,
    remove_stale,
)


def _finish(con: duckdb.DuckDBPyConnection, name: str, sql: str) -> str:
    """Materialise output ``name`` with the dtypes its feature view declares (see
    :func:`finish`)."""
    exact = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DECIMAL", '"NULL"'}
    # DESCRIBE of the query plans it without running it: nothing is materialised here
    columns = [
        (column, dtype in exact or dtype.startswith("DECIMAL"))
        for column, dtype, *_ in con.execute(f"DESCRIBE {sql}").fetchall()
    ]
    return finish(name, sql, columns)


def connect(config: Mapping[str, str | int | bool] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for the build.

    ``config``: ``Settings.duckdb_config`` (memory limit, spill directory, threads,
    insertion order); without it DuckDB's defaults (80 % of the memory, spilling into
    ``.tmp`` of the working directory).
    """
    config = dict(config or {})
    if "temp_directory" in config:
        Path(str(config["temp_directory"])).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config=config)
    con.execute("SET enable_progress_bar = false")
    # period numbers are UTC days, whatever the machine's zone
    con.execute("SET TimeZone = 'UTC'")
    return con


def stage(con: duckdb.DuckDBPyConnection, plan: Plan = DAILY) -> None:
    """Turn the relations ``raw_<table>`` into the inputs ``transforms`` expects."""
    day = "CAST(date_diff('day', DATE '1970-01-01', CAST({} AS DATE)) AS INTEGER)"
    period = plan.calendar.period_sql
    if plan.order_lines:  # order lines are daily
        con.execute(f"""
            CREATE OR REPLACE TABLE lines AS
            SELECT order_id, customer_id, store_id, product_id,
                   {day.format("ordered_at")} AS day,
                   quantity, quantity * unit_price AS revenue,
                   {"promo" if _has_column(con, "raw_orders", "promo") else "FALSE"} AS promo
            FROM raw_orders""")
        first_last = "SELECT MIN(day), MAX(day) FROM lines"
    else:
        price = "price" if _has_column(con, "raw_sales", "price") else "NULL"
        promo = "promo" if _has_column(con, "raw_sales", "promo") else "NULL"
        has = {c: _has_column(con, "raw_sales", c) for c in ("on_hand", "stockout", "active")}
        # a view: the largest input is read from its parquet where a step needs it
        con.execute(f"""
            CREATE OR REPLACE VIEW sales_daily AS
            SELECT store_id, product_id, {period(day.format("date"))} AS day,
                   CAST(units AS DOUBLE) AS units,
                   CAST(units * {price} AS DOUBLE) AS revenue,
                   CAST(CASE WHEN {price} IS NOT NULL THEN units END AS DOUBLE) AS priced_units,
                   CASE WHEN {promo} THEN 1 ELSE 0 END AS promo,
                   {t.stockout_sql(has["on_hand"], has["stockout"])} AS stockout,
                   {t.listed_sql(has["active"])} AS listed
            FROM raw_sales""")
        first_last = "SELECT MIN(day), MAX(day) FROM sales_daily"
    lifespan = "lifespan_days" if _has_column(con, "raw_products", "lifespan_days") else "NULL"
    price = "list_price" if _has_column(con, "raw_products", "list_price") else "NULL"
    con.execute(f"""
        CREATE OR REPLACE TABLE products AS
        SELECT product_id, category, CAST({lifespan} AS DOUBLE) AS lifespan_days,
               CAST({price} AS DOUBLE) AS list_price
        FROM raw_products""")
    coordinates = ", ".join(
        f"CAST({c} AS DOUBLE) AS {c}"
        if _has_column(con, "raw_stores", c)
        else f"CAST(NULL AS DOUBLE) AS {c}"
        for c in ("latitude", "longitude")
    )
    con.execute(
        f"CREATE OR REPLACE TABLE stores AS "
        f"SELECT store_id, region_id, {coordinates} FROM raw_stores"
    )
    # a measure the data set does not give is a NULL column (and an absent feature)
    observed = _measures(con, "raw_weather_observed")
    con.execute(f"""
        CREATE OR REPLACE TABLE weather_observed AS
        SELECT region_id, {day.format("date")} AS day, {observed} FROM raw_weather_observed""")
    if plan.forecasts:
        forecast = _measures(con, "raw_weather_forecast")
        con.execute(f"""
            CREATE OR REPLACE TABLE weather_forecast AS
            SELECT region_id, {day.format("issued_at")} AS issue_day,
                   CAST(issued_at AS TIMESTAMPTZ) AS issued_at,
                   {day.format("valid_date")} AS valid_day, {forecast}
            FROM raw_weather_forecast""")
    if plan.promotions:
        has = {c: _has_column(con, "raw_promotions", c) for c in ("promo", "price")}
        con.execute(f"""
            CREATE OR REPLACE TABLE plans AS
            SELECT store_id, product_id, {period(day.format("date"))} AS day,
                   {"promo" if has["promo"] else "CAST(NULL AS BOOLEAN)"} AS promo,
                   {"CAST(price AS DOUBLE)" if has["price"] else "CAST(NULL AS DOUBLE)"} AS price,
                   CAST(planned_at AS TIMESTAMPTZ) AS planned_at
            FROM raw_promotions""")
    if plan.assortment:
        con.execute(f"""
            CREATE OR REPLACE TABLE assortment AS
            SELECT store_id, product_id, {period(day.format("listed_from"))} AS from_day,
                   {period(day.format("listed_to"))} AS to_day
            FROM raw_assortment""")
    con.execute(f"""
        CREATE OR REPLACE TABLE periods AS
        SELECT CAST(range AS INTEGER) AS day
        FROM (SELECT * FROM ({first_last}) t(first, last)),
             range(first, last + 1)""")


def _measures(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    return ", ".join(
        f"CAST({m} AS DOUBLE) AS {m}"
        if _has_column(con, relation, m)
        else f"CAST(NULL AS DOUBLE) AS {m}"
        for m in MEASURES
    )


def _has_column(con: duckdb.DuckDBPyConnection, relation: str, column: str) -> bool:
    return column in [c[0] for c in con.execute(f"DESCRIBE {relation}").fetchall()]


def transform(
    con: duckdb.DuckDBPyConnection,
    windows: t.Windows | None = None,
    progress: Callable[[str], None] | None = None,
    plan: Plan = DAILY,
    since: str | None = None,
) -> None:
    """Create every intermediate relation, in order (``since``: see :meth:`Plan.steps`)."""
    windows = windows or plan.w
    for name, sql in plan.steps(since):
        name = name.replace("SHORT", str(windows.short)).replace("LONG", str(windows.long))
        started = time.perf_counter()
        kind = "VIEW" if name in plan.streamed else "TABLE"
        con.execute(f"CREATE OR REPLACE {kind} {name} AS {sql(windows)}")
        if progress and kind == "TABLE":
            progress(f"{name} ({time.perf_counter() - started:.1f}s)")


def compute(
    frames: Mapping[str, pd.DataFrame],
    windows: t.Windows | None = None,
    description: RawDescription | None = None,
) -> dict[str, pd.DataFrame]:
    """Raw frames in, feature tables out, all in memory: the function tests call."""
    plan = Plan(description or RawDescription(), windows)
    con = connect()
    for name in plan.raw_tables:
        con.register(f"raw_{name}", frames[name])
    stage(con, plan)
    transform(con, plan.w, plan=plan)
    return {name: con.execute(_finish(con, name, sql)).df() for name, sql in plan.outputs().items()}


def build(
    raw_dir: Path,
    feature_dir: Path,
    windows: t.Windows | None = None,
    progress: Callable[[str], None] | None = None,
    duckdb_config: Mapping[str, str | int | bool] | None = None,
    previous: Path | None = None,
) -> BuildReport:
    """Read ``raw_dir/<table>.parquet``, write ``feature_dir/<table>.parquet``.

    What to build follows ``raw_dir/dataset.json`` (grain, sales table, optional
    tables, weather measures); without one, the generator's daily order lines.
    ``duckdb_config``: ``Settings.duckdb_config`` (memory limit and spilling).

    ``previous``: the feature tables of an earlier build. When its purchase table was
    built under the same definitions and grain from the same staged sales through its
    last period (new sales only appended after it), the purchase table is built
    incrementally: its rows through that period are kept, as they cannot change (every
    row is known when its period closes; tests/features/test_prefix.py), and only the
    later periods are computed, from the sales of the look-back before them. Every other
    table is small or a plain projection of its raw table and is built whole. Otherwise
    (order lines, another grain, changed sales or definitions) the build is full;
    ``BuildReport.mode`` says which and why.
    """
    plan = plan_for(raw_dir, windows)
    started = time.perf_counter()
    feature_dir.mkdir(parents=True, exist_ok=True)
    con = connect(duckdb_config)
    try:
        for name in plan.raw_tables:
            path = (raw_dir / f"{name}.parquet").as_posix().replace("'", "''")
            con.execute(f"CREATE VIEW raw_{name} AS SELECT * FROM read_parquet('{path}')")
        stage(con, plan)
        through, mode = _incremental_from(con, plan, previous)
        since = None if through is None else str(grid_start(through, plan.w))
        if progress:
            progress(f"{mode} build")
        transform(con, plan.w, progress, plan, since)
        rows = _write_outputs(con, plan, feature_dir, previous, through, progress)
        source = "lines" if plan.order_lines else "sales_daily"
        input_lines = con.execute(f"SELECT COUNT(*) FROM {source}").fetchone()[0]
    finally:
        con.close()
    remove_stale(feature_dir, rows)
    return BuildReport(rows, time.perf_counter() - started, input_lines, mode)


def _write_outputs(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    feature_dir: Path,
    previous: Path | None,
    through: int | None,
    progress: Callable[[str], None] | None,
) -> dict[str, int]:
    rows = {}
    lineage_meta = _sales_lineage(con, plan) if not plan.order_lines else {}
    for name, sql in plan.outputs().items():
        step_started = time.perf_counter()
        target = feature_dir / f"{name}.parquet"
        tmp = target.with_suffix(".parquet.tmp")
        meta = plan.metadata(name) | (lineage_meta if name == plan.sales_table else {})
        query = _finish(con, name, sql)
        if name == plan.sales_table and through is not None and previous is not None:
            # the rows through the previous build's last period, as that build wrote them,
            # and the later ones computed now
            kept = (previous / f"{name}.parquet").as_posix().replace("'", "''")
            query = (
                f"SELECT * FROM read_parquet('{kept}') "
                f"WHERE event_timestamp <= {known_at(str(through), plan.calendar)} "
                f"UNION ALL BY NAME "
                f"{_finish(con, name, f'SELECT * FROM ({sql}) s WHERE day > {through}')}"
            )
        metadata = ", ".join(f"'{k}': '{v}'" for k, v in meta.items())
        # write then rename: a reader (Feast, a running materialization) never sees half a file
        con.execute(
            f"COPY ({query}) TO '{tmp.as_posix()}' (FORMAT PARQUET, KV_METADATA {{{metadata}}})"
        )
        tmp.replace(target)
        rows[name] = con.execute(
            f"SELECT COUNT(*) FROM read_parquet('{target.as_posix()}')"
        ).fetchone()[0]
        if progress:
            seconds = time.perf_counter() - step_started
            progress(f"{name}.parquet: {rows[name]:,} rows ({seconds:.1f}s)")
    return rows


def _definition(plan: Plan) -> str:
    """A hash of everything that computes the purchase table besides the sales themselves."""
    w = plan.w
    parts = [
        INCREMENTAL_FORMAT,
        duckdb.__version__,
        repr(w),
        repr(plan.calendar),
        plan.outputs()[plan.sales_table],
        *(sql(w) for name, sql in plan.steps() if name in plan.streamed),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _sales_digest(con: duckdb.DuckDBPyConnection, through: int) -> str:
    """Rows and a hash of the staged sales through period ``through``: equal digests, equal
    inputs to every purchase feature row of those periods."""
    count, total = con.execute(f"""
        SELECT COUNT(*), SUM(CAST(hash(store_id, product_id, day, units, revenue,
                                       priced_units, promo, stockout, listed) AS HUGEINT))
        FROM sales_daily WHERE day <= {through}""").fetchone()
    return f"{count}:{total or 0}"


def _sales_lineage(con: duckdb.DuckDBPyConnection, plan: Plan) -> dict[str, str]:
    (through,) = con.execute("SELECT MAX(day) FROM periods").fetchone()
    return {
        META_THROUGH: str(through),
        META_SALES_DIGEST: _sales_digest(con, through),
        META_DEFINITION: _definition(plan),
    }


def _incremental_from(
    con: duckdb.DuckDBPyConnection, plan: Plan, previous: Path | None
) -> tuple[int | None, str]:
    """The previous build's last period when this build can extend it, and why (not)."""
    if previous is None:
        return None, "full"
    if plan.order_lines:
        # customer intervals run from the first purchase on, lifespan and co-purchase
        # estimates read a year of lines: an increment would recompute most of it
        return None, "full (order lines are built whole)"
    import pyarrow.parquet as pq

    path = previous / f"{plan.sales_table}.parquet"
    if not path.exists():
        return None, f"full (no previous {plan.sales_table} table)"
    meta = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
    built_on = meta.get(META_ENGINE, Engine.duckdb.value)
    if built_on != Engine.duckdb.value:
        return None, f"full (the previous tables were built on {built_on})"
    expected = plan.metadata(plan.sales_table)
    if any(meta.get(k) != v for k, v in expected.items() if k not in (META_ABSENT, META_ENGINE)):
        return None, "full (the grain or the sales table changed)"
    if META_THROUGH not in meta or meta.get(META_DEFINITION) != _definition(plan):
        return None, "full (the feature definitions changed)"
    through = int(meta[META_THROUGH])
    if _sales_digest(con, through) != meta.get(META_SALES_DIGEST):
        return None, (
            f"full (sales of the periods through {period_start(plan, through)} changed, "
            "not only appended)"
        )
    (last,) = con.execute("SELECT MAX(day) FROM periods").fetchone()
    return through, (
        f"incremental ({last - through} new {plan.w.unit}(s) after the period of "
        f"{period_start(plan, through)})"
    )
