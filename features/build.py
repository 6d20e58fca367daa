"""Run the feature transforms on DuckDB: raw parquet in, offline feature tables out.

The portable SQL lives in ``transforms.py``; this module holds what is
engine-specific: how raw files become relations with period numbers, and how
periods become the timestamps Feast joins on.

Timestamps follow one rule: a feature row carries the instant it became known.
A row "as of" day d is known when day d closes, at 00:00 UTC of d + 1; a
forecast is known when it is issued. A point-in-time join at an origin therefore
never sees a day that had not ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from features import transforms as t

RAW_TABLES = ("orders", "products", "stores", "weather_observed", "weather_forecast")

# intermediate relations, in dependency order
_STEPS: tuple[tuple[str, Callable[[t.Windows], str]], ...] = (
    ("sales_daily", lambda w: t.sales_daily()),
    ("sales_grid", lambda w: t.sales_grid()),
    ("purchase_features", t.purchase_features),
    ("customer_days", lambda w: t.customer_days()),
    ("distinct_customers_SHORT", lambda w: t.distinct_customers(w.short)),
    ("distinct_customers_LONG", lambda w: t.distinct_customers(w.long)),
    ("repeat_intervals", lambda w: t.repeat_intervals()),
    ("lifespan_snapshots", t.lifespan_snapshots),
    ("product_lifespan", t.product_lifespan),
    ("replacement_windows", t.replacement_windows),
    ("replacements_due", t.replacements_due),
    ("replacements_due_by_day", t.replacements_due_by_day),
    ("installed_base", lambda w: t.installed_base()),
    ("copurchase_snapshots", lambda w: t.snapshots(w.copurchase_every)),
    ("copurchase_counts", t.copurchase_counts),
    ("copurchase_partners", t.copurchase_partners),
    ("store_product_daily", t.store_product_daily),
    ("store_product_replenishment", t.store_product_replenishment),
    ("region_weather_daily", t.region_weather_daily),
    ("region_weather_forecast", lambda w: t.region_weather_forecast()),
)


def _known_at(period: str) -> str:
    """The instant a row as of ``period`` became known: the end of that day, UTC."""
    return f"to_timestamp(CAST(({period} + 1) AS BIGINT) * 86400)"


def _as_of_day(relation: str, known_at: str) -> str:
    """Every column of a per-day relation, stamped with when its row became known."""
    stamp = _known_at("day")
    return f"SELECT *, {stamp} AS event_timestamp, {stamp} AS {known_at} FROM {relation}"


def _outputs() -> dict[str, str]:
    """Offline feature tables: name → SELECT over the intermediate relations."""
    history_start = "(SELECT to_timestamp(CAST(MIN(day) AS BIGINT) * 86400) FROM periods)"
    return {
        "store_product_daily": _as_of_day("store_product_daily", "sales_known_at"),
        "store_product_replenishment": _as_of_day(
            "store_product_replenishment", "replenishment_known_at"
        ),
        "product_lifespan": _as_of_day("product_lifespan", "lifespan_known_at"),
        "region_weather_daily": _as_of_day("region_weather_daily", "weather_known_at"),
        "region_weather_forecast": """
            SELECT region_id, strftime(to_timestamp(CAST(valid_day AS BIGINT) * 86400),
                                       '%Y-%m-%d') AS target_date,
                   forecast_lead_days, forecast_temperature_c, forecast_precipitation_mm,
                   forecast_sunshine_hours,
                   issued_at AS event_timestamp, issued_at AS forecast_issued_at
            FROM region_weather_forecast""",
        # attributes are valid from the first day of the history on
        "store_attributes": f"""
            SELECT store_id, region_id AS store_region_id, latitude, longitude,
                   {history_start} AS event_timestamp FROM stores""",
        "product_attributes": f"""
            SELECT product_id, category, list_price,
                   {history_start} AS event_timestamp FROM products""",
    }


FEATURE_TABLES = tuple(_outputs())
DEFAULT_WINDOWS = t.Windows()
_INTEGER_FEATURES = {"forecast_lead_days"}
_PERIOD_COLUMNS = {"day", "issue_day", "valid_day"}


def _finish(con: duckdb.DuckDBPyConnection, name: str, sql: str) -> str:
    """Materialise output ``name`` with the dtypes its feature view declares.

    Counts and sums come out of SQL as integers (or DuckDB's 128-bit HUGEINT);
    the views declare them Float64 so that a missing value is NaN, not an error.
    Period numbers are dropped: ``event_timestamp`` carries the time.
    """
    con.execute(f"CREATE OR REPLACE TABLE out_{name} AS {sql}")
    columns = []
    for column, dtype, *_ in con.execute(f"DESCRIBE out_{name}").fetchall():
        if column in _PERIOD_COLUMNS:
            continue
        if column in _INTEGER_FEATURES:
            columns.append(f"CAST({column} AS BIGINT) AS {column}")
        elif dtype in {
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "HUGEINT",
            "DECIMAL",
        } or dtype.startswith("DECIMAL"):
            columns.append(f"CAST({column} AS DOUBLE) AS {column}")
        else:
            columns.append(column)
    return f"SELECT {', '.join(columns)} FROM out_{name}"


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # period numbers are UTC days, whatever the machine's zone
    con.execute("SET TimeZone = 'UTC'")
    return con


def stage(con: duckdb.DuckDBPyConnection) -> None:
    """Turn the relations ``raw_<table>`` into the inputs ``transforms`` expects."""
    day = "CAST(date_diff('day', DATE '1970-01-01', CAST({} AS DATE)) AS INTEGER)"
    con.execute(f"""
        CREATE OR REPLACE TABLE lines AS
        SELECT order_id, customer_id, store_id, product_id, {day.format("ordered_at")} AS day,
               quantity, quantity * unit_price AS revenue,
               {"promo" if _has_column(con, "raw_orders", "promo") else "FALSE"} AS promo
        FROM raw_orders""")
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
    measures = "temperature_c, precipitation_mm, sunshine_hours"
    con.execute(f"""
        CREATE OR REPLACE TABLE weather_observed AS
        SELECT region_id, {day.format("date")} AS day, {measures} FROM raw_weather_observed""")
    con.execute(f"""
        CREATE OR REPLACE TABLE weather_forecast AS
        SELECT region_id, {day.format("issued_at")} AS issue_day,
               CAST(issued_at AS TIMESTAMPTZ) AS issued_at,
               {day.format("valid_date")} AS valid_day, {measures} FROM raw_weather_forecast""")
    con.execute("""
        CREATE OR REPLACE TABLE periods AS
        SELECT CAST(range AS INTEGER) AS day
        FROM range((SELECT MIN(day) FROM lines), (SELECT MAX(day) FROM lines) + 1)""")


def _has_column(con: duckdb.DuckDBPyConnection, relation: str, column: str) -> bool:
    return column in [c[0] for c in con.execute(f"DESCRIBE {relation}").fetchall()]


def transform(
    con: duckdb.DuckDBPyConnection,
    windows: t.Windows,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Create every intermediate relation, in order."""
    for name, sql in _STEPS:
        name = name.replace("SHORT", str(windows.short)).replace("LONG", str(windows.long))
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql(windows)}")
        if progress:
            progress(f"{name} ({time.perf_counter() - started:.1f}s)")


def compute(
    frames: Mapping[str, pd.DataFrame], windows: t.Windows = DEFAULT_WINDOWS
) -> dict[str, pd.DataFrame]:
    """Raw frames in, feature tables out, all in memory: the function tests call."""
    con = connect()
    for name in RAW_TABLES:
        con.register(f"raw_{name}", frames[name])
    stage(con)
    transform(con, windows)
    return {name: con.execute(_finish(con, name, sql)).df() for name, sql in _outputs().items()}


@dataclass(frozen=True)
class BuildReport:
    rows: dict[str, int]
    seconds: float
    input_lines: int


def build(
    raw_dir: Path,
    feature_dir: Path,
    windows: t.Windows = DEFAULT_WINDOWS,
    progress: Callable[[str], None] | None = None,
) -> BuildReport:
    """Read ``raw_dir/<table>.parquet``, write ``feature_dir/<table>.parquet``."""
    missing = [n for n in RAW_TABLES if not (raw_dir / f"{n}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"raw tables missing in {raw_dir}: {', '.join(missing)}; "
            "run `demand generate` (or import your own files) first"
        )
    started = time.perf_counter()
    feature_dir.mkdir(parents=True, exist_ok=True)
    con = connect()
    for name in RAW_TABLES:
        path = (raw_dir / f"{name}.parquet").as_posix().replace("'", "''")
        con.execute(f"CREATE VIEW raw_{name} AS SELECT * FROM read_parquet('{path}')")
    stage(con)
    transform(con, windows, progress)
    rows = {}
    for name, sql in _outputs().items():
        target = feature_dir / f"{name}.parquet"
        tmp = target.with_suffix(".parquet.tmp")
        # write then rename: a reader (Feast, a running materialization) never sees half a file
        con.execute(f"COPY ({_finish(con, name, sql)}) TO '{tmp.as_posix()}' (FORMAT PARQUET)")
        tmp.replace(target)
        rows[name] = con.execute(
            f"SELECT COUNT(*) FROM read_parquet('{target.as_posix()}')"
        ).fetchone()[0]
    input_lines = con.execute("SELECT COUNT(*) FROM lines").fetchone()[0]
    return BuildReport(rows, time.perf_counter() - started, input_lines)
