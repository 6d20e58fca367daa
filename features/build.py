"""Run the feature transforms on DuckDB: raw parquet in, offline feature tables out.

The portable SQL lives in ``transforms.py``; this module holds the plan (which
steps and outputs a data set builds, their lineage) and what is DuckDB-specific: how
raw files become relations with period numbers, and how periods become the
timestamps Feast joins on. ``build_spark.py`` runs the same plan on Spark;
:func:`build_with` picks the engine ``DEMAND_ENGINE`` names.

Timestamps follow one rule: a feature row carries the instant it became known.
A row "as of" day d is known when day d closes, at 00:00 UTC of d + 1; a
forecast is known when it is issued. A point-in-time join at an origin therefore
never sees a day that had not ended.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from demand.settings import Engine, Settings
from features import transforms as t
from features.grain import Calendar, Grain, RawDescription, SalesTable

RAW_TABLES = ("orders", "products", "stores", "weather_observed", "weather_forecast")
MEASURES = ("temperature_c", "precipitation_mm", "sunshine_hours")

# Lineage written into every feature table's parquet metadata: the grain the table is
# at, and the features it has no data for (NULL columns kept so that the feature view's
# schema holds; training leaves them out of models, serving never reads them).
META_GRAIN, META_WEEK_START, META_SALES_TABLE, META_ABSENT = (
    "demand.grain",
    "demand.week_start",
    "demand.sales_table",
    "demand.absent_features",
)
# Lineage of the purchase table, for the next incremental build: the last period it
# holds, a digest of the staged sales through that period, and a hash of the
# definitions that computed it. A later build whose sales through that period hash the
# same, under the same definitions, recomputes only what can change (see `build`).
META_THROUGH, META_SALES_DIGEST, META_DEFINITION = (
    "demand.through_period",
    "demand.sales_digest",
    "demand.definition",
)
# bump when the build's output changes in a way the definition hash does not see
INCREMENTAL_FORMAT = "1"
# what order lines give and aggregated sales cannot (no customer ids, no baskets)
CUSTOMER_FEATURES = {
    "store_product_daily": (
        "customers_7",
        "customers_28",
        "copurchase_partner_id",
        "partner_units_lag_1",
        "partner_units_mean_7",
    ),
    "product_lifespan": (
        "replacement_interval_iqr_days",
        "repeat_pairs",
        "repeat_buyer_share",
    ),
}
# the sales and observed-weather tables of each grain (their views differ in feature names)
SALES_TABLE = {Grain.day: "store_product_daily", Grain.week: "store_product_weekly"}
WEATHER_TABLE = {Grain.day: "region_weather_daily", Grain.week: "region_weather_weekly"}
FORECAST_TABLE = {
    Grain.day: "region_weather_forecast",
    Grain.week: "region_weather_forecast_weekly",
}

META_ENGINE = "demand.engine"  # the engine that built the table (absent: duckdb, older builds)


@dataclass(frozen=True)
class Dialect:
    """The two spellings the feature tables' SELECTs need that differ between engines."""

    engine: Engine
    timestamp: str  # SQL of a UTC instant from ``{}``, seconds since the epoch (BIGINT)
    date_text: str  # SQL of an instant's UTC date as YYYY-MM-DD text

    def at(self, seconds: str) -> str:
        return self.timestamp.format(seconds)

    def day_text(self, instant: str) -> str:
        return self.date_text.format(instant)


DUCKDB = Dialect(Engine.duckdb, "to_timestamp({})", "strftime({}, '%Y-%m-%d')")

Step = tuple[str, Callable[[t.Windows], str]]
ORDER_LINE_STEPS: tuple[Step, ...] = (
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
)
# aggregated sales: ``sales_daily`` is staged from the retailer's periods
AGGREGATED_STEPS: tuple[Step, ...] = (
    ("sales_grid", lambda w: t.sales_grid()),
    ("purchase_features", t.purchase_features),
    ("lifespan_snapshots", t.lifespan_snapshots),
    ("product_lifespan", t.declared_lifespan),
    ("store_product_daily", t.sales_features),
)


@dataclass(frozen=True)
class Plan:
    """What one raw data set builds: at which grain, with which windows, into which tables."""

    description: RawDescription = field(default_factory=RawDescription)
    windows: t.Windows | None = None  # None: the grain's defaults

    @property
    def calendar(self) -> Calendar:
        return self.description.calendar

    @property
    def grain(self) -> Grain:
        return self.description.grain

    @property
    def w(self) -> t.Windows:
        return self.windows or t.for_grain(self.grain)

    @property
    def order_lines(self) -> bool:
        return self.description.sales_table is SalesTable.orders

    @property
    def forecasts(self) -> bool:
        return "weather_forecast" in self.description.optional_tables

    @property
    def promotions(self) -> bool:
        return "promotions" in self.description.optional_tables

    @property
    def raw_tables(self) -> tuple[str, ...]:
        sales = "orders" if self.order_lines else "sales"
        optional = [
            n for n in ("weather_forecast", "promotions") if n in self.description.optional_tables
        ]
        return (sales, "products", "stores", "weather_observed", *optional)

    @property
    def sales_table(self) -> str:
        return SALES_TABLE[self.grain]

    @property
    def streamed(self) -> frozenset[str]:
        """Steps created as views, not tables: each is read once, by the next step or an
        output, so the rows flow (and spill) through the final COPY instead of being
        held as one more copy of the largest table. Order lines read their grid and
        purchase features several times; those stay tables."""
        if self.order_lines:
            return frozenset({"store_product_daily", "store_product_replenishment"})
        return frozenset({"sales_grid", "purchase_features", "store_product_daily"})

    def steps(self, since: str | None = None) -> list[Step]:
        """The intermediate relations in order; ``since``: an incremental build's grid start."""
        steps = list(ORDER_LINE_STEPS if self.order_lines else AGGREGATED_STEPS)
        if since is not None:
            steps = [
                (name, (lambda w: t.sales_grid(since)) if name == "sales_grid" else sql)
                for name, sql in steps
            ]
        days = self.calendar.days
        period = self.calendar.period_sql("day")
        steps += [
            ("weather_periods", lambda w: t.weather_periods(period)),
            ("region_weather_daily", lambda w: t.region_weather_daily(w, days)),
            ("region_weather_climate", lambda w: t.weather_climate(days)),
        ]
        if self.forecasts and self.grain is Grain.day:
            steps.append(("region_weather_forecast", lambda w: t.region_weather_forecast()))
        elif self.forecasts:  # whole target weeks, one issue at a time
            valid = self.calendar.period_sql("valid_day")
            steps.append(
                (
                    "region_weather_forecast",
                    lambda w: t.region_weather_forecast_periods(valid, days),
                )
            )
        if self.promotions:
            steps.append(("planned_promotions", lambda w: t.planned_promotions()))
        return steps

    def absent(self) -> dict[str, tuple[str, ...]]:
        """Per output table, the features this data set has no data for."""
        out: dict[str, list[str]] = {}
        if not self.order_lines:
            for table, names in CUSTOMER_FEATURES.items():
                out.setdefault(self.output_name(table), []).extend(
                    n for n in names if self.grain is Grain.day or table != "store_product_daily"
                )
        missing = [m for m in MEASURES if m not in self.description.weather_measures]
        w = self.w
        derived = {
            "temperature_c": [f"temperature_mean_{w.short}{w.suffix}"],
            "precipitation_mm": [
                f"precipitation_sum_{w.short}{w.suffix}",
                f"rainy_days_{w.short}{w.suffix}",
            ],
            "sunshine_hours": [],
        }
        for m in missing:
            out.setdefault(WEATHER_TABLE[self.grain], []).extend([m, *derived[m]])
            out.setdefault("region_weather_climate", []).append(f"climate_{m}")
            if self.forecasts:
                out.setdefault(FORECAST_TABLE[self.grain], []).append(f"forecast_{m}")
        return {k: tuple(v) for k, v in out.items() if v}

    def output_name(self, table: str) -> str:
        """The file a table of the daily plan is written to at this grain."""
        return {
            "store_product_daily": self.sales_table,
            "region_weather_daily": WEATHER_TABLE[self.grain],
        }.get(table, table)

    def outputs(self, dialect: Dialect = DUCKDB) -> dict[str, str]:
        """Offline feature tables: file name → SELECT over the intermediate relations."""
        cal, sql = self.calendar, dialect
        first = f"CAST(MIN(day) * {cal.days} + {cal.offset} AS BIGINT) * 86400"
        history_start = f"(SELECT {sql.at(first)} FROM periods)"
        out = {
            self.sales_table: _as_of("store_product_daily", "sales_known_at", cal, sql),
        }
        if self.order_lines:
            out["store_product_replenishment"] = _as_of(
                "store_product_replenishment", "replenishment_known_at", cal, sql
            )
        out["product_lifespan"] = _as_of("product_lifespan", "lifespan_known_at", cal, sql)
        out[WEATHER_TABLE[self.grain]] = _as_of(
            "region_weather_daily", "weather_known_at", cal, sql
        )
        # the climate of a target period, known a year ahead, keyed by that period
        target = f"CAST(target_period * {cal.days} + {cal.offset} AS BIGINT) * 86400"
        stamp = _known_at("day", cal, sql)
        out["region_weather_climate"] = f"""
            SELECT region_id, {sql.day_text(sql.at(target))} AS target_date,
                   climate_temperature_c, climate_precipitation_mm, climate_sunshine_hours,
                   climate_years, {stamp} AS event_timestamp, {stamp} AS climate_known_at
            FROM region_weather_climate"""
        if self.forecasts and self.grain is Grain.week:
            start = f"CAST(target_period * {cal.days} + {cal.offset} AS BIGINT) * 86400"
            out[FORECAST_TABLE[Grain.week]] = f"""
            SELECT region_id, {sql.day_text(sql.at(start))} AS target_date,
                   forecast_lead_days, forecast_temperature_c, forecast_precipitation_mm,
                   forecast_sunshine_hours,
                   issued_at AS event_timestamp, issued_at AS forecast_issued_at
            FROM region_weather_forecast"""
        elif self.forecasts:
            valid = sql.day_text(sql.at("CAST(valid_day AS BIGINT) * 86400"))
            out["region_weather_forecast"] = f"""
            SELECT region_id, {valid} AS target_date,
                   forecast_lead_days, forecast_temperature_c, forecast_precipitation_mm,
                   forecast_sunshine_hours,
                   issued_at AS event_timestamp, issued_at AS forecast_issued_at
            FROM region_weather_forecast"""
        # attributes are valid from the first day of the history on
        out["store_attributes"] = f"""
            SELECT store_id, region_id AS store_region_id, latitude, longitude,
                   {history_start} AS event_timestamp FROM stores"""
        out["product_attributes"] = f"""
            SELECT product_id, category, list_price,
                   {history_start} AS event_timestamp FROM products"""
        if self.promotions:
            # a plan is known from its planned_at; it is keyed by the period it is for
            start = f"CAST(target_day * {cal.days} + {cal.offset} AS BIGINT) * 86400"
            out["planned_promotions"] = f"""
            SELECT store_id, product_id,
                   {sql.day_text(sql.at(start))} AS target_date,
                   planned_promo, planned_price,
                   planned_at AS event_timestamp, planned_at AS plan_known_at
            FROM planned_promotions"""
        return out

    def metadata(self, table: str, engine: Engine = Engine.duckdb) -> dict[str, str]:
        return {
            META_ENGINE: engine.value,
            META_GRAIN: self.grain.value,
            META_WEEK_START: self.description.week_start,
            META_SALES_TABLE: self.description.sales_table.value,
            META_ABSENT: ",".join(self.absent().get(table, ())),
        }


def _known_at(period: str, calendar: Calendar, dialect: Dialect = DUCKDB) -> str:
    """The instant a row as of ``period`` became known: the start of the next period, UTC."""
    next_start = calendar.start_sql(f"{period} + 1")
    return dialect.at(f"CAST(({next_start}) AS BIGINT) * 86400")


def _as_of(relation: str, known_at: str, calendar: Calendar, dialect: Dialect) -> str:
    """Every column of a per-period relation, stamped with when its row became known."""
    stamp = _known_at("day", calendar, dialect)
    return f"SELECT *, {stamp} AS event_timestamp, {stamp} AS {known_at} FROM {relation}"


DAILY = Plan()
FEATURE_TABLES = tuple(DAILY.outputs())  # the generated order lines' tables
DEFAULT_WINDOWS = t.Windows()
ALL_FEATURE_TABLES = (
    *FEATURE_TABLES,
    "store_product_weekly",
    "region_weather_weekly",
    "region_weather_forecast_weekly",
    "planned_promotions",
)
_INTEGER_FEATURES = {"forecast_lead_days"}
_PERIOD_COLUMNS = {"day", "issue_day", "valid_day", "target_day", "target_period"}


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


def finish(name: str, sql: str, columns: Iterable[tuple[str, bool]]) -> str:
    """The SELECT of output ``name`` with the dtypes its feature view declares.

    ``columns``: each column of ``sql`` and whether the engine typed it as an integer,
    a decimal or an untyped NULL. Counts and sums come out of SQL as integers (or
    DuckDB's 128-bit HUGEINT); the views declare them Float64 so that a missing value
    is NaN, not an error. Period numbers are dropped: ``event_timestamp`` carries the time.
    """
    selected = []
    for column, exact in columns:
        if column in _PERIOD_COLUMNS:
            continue
        if column in _INTEGER_FEATURES:
            selected.append(f"CAST({column} AS BIGINT) AS {column}")
        elif exact:
            selected.append(f"CAST({column} AS DOUBLE) AS {column}")
        else:
            selected.append(column)
    return f"SELECT {', '.join(selected)} FROM ({sql}) out_{name}"


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
        # a view: the largest input is read from its parquet where a step needs it
        con.execute(f"""
            CREATE OR REPLACE VIEW sales_daily AS
            SELECT store_id, product_id, {period(day.format("date"))} AS day,
                   CAST(units AS DOUBLE) AS units,
                   CAST(units * {price} AS DOUBLE) AS revenue,
                   CAST(CASE WHEN {price} IS NOT NULL THEN units END AS DOUBLE) AS priced_units,
                   CASE WHEN {promo} THEN 1 ELSE 0 END AS promo
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


@dataclass(frozen=True)
class BuildReport:
    rows: dict[str, int]
    seconds: float
    input_lines: int
    mode: str = "full"  # "full (why)" or "incremental (what)": what the build did and why


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


def build_with(
    settings: Settings,
    feature_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    previous: Path | None = None,
) -> BuildReport:
    """:func:`build` from ``settings.raw_dir`` on the engine ``DEMAND_ENGINE`` names.

    ``feature_dir``: where to write (default ``settings.feature_dir``); ``previous``: as
    in :func:`build` (the Spark build always builds whole and says so in its mode).
    """
    feature_dir = feature_dir or settings.feature_dir
    if settings.engine is Engine.spark:
        from features import build_spark

        return build_spark.build(settings, settings.raw_dir, feature_dir, progress, previous)
    return build(
        settings.raw_dir,
        feature_dir,
        progress=progress,
        duckdb_config=settings.duckdb_config,
        previous=previous,
    )


def plan_for(raw_dir: Path, windows: t.Windows | None = None) -> Plan:
    """What ``raw_dir`` builds; FileNotFoundError when a raw table it needs is missing."""
    plan = Plan(RawDescription.read(raw_dir), windows)
    missing = [n for n in plan.raw_tables if not (raw_dir / f"{n}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"raw tables missing in {raw_dir}: {', '.join(missing)}; "
            "run `demand generate` (or import your own files) first"
        )
    return plan


def remove_stale(feature_dir: Path, built: Mapping[str, int]) -> None:
    """Tables of another grain or contract left by an earlier build would be read as this
    build's: remove every feature table this build did not write."""
    for stale in set(ALL_FEATURE_TABLES) - set(built):
        (feature_dir / f"{stale}.parquet").unlink(missing_ok=True)


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
                f"WHERE event_timestamp <= {_known_at(str(through), plan.calendar)} "
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


def grid_start(through: int, w: t.Windows) -> int:
    """The first period an incremental build computes: the first new period's look-back.

    The row of period ``through + 1`` reads ``w.lookback - 1`` periods before it (its
    longest lag or window); earlier ones are read by no new row.
    """
    return through + 2 - w.lookback


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
                                       priced_units, promo) AS HUGEINT))
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
            f"full (sales of the periods through {_period_start(plan, through)} changed, "
            "not only appended)"
        )
    (last,) = con.execute("SELECT MAX(day) FROM periods").fetchone()
    return through, (
        f"incremental ({last - through} new {plan.w.unit}(s) after the period of "
        f"{_period_start(plan, through)})"
    )


def _period_start(plan: Plan, period: int) -> str:
    """The first day of a period number, for messages."""
    return plan.calendar.start(period).isoformat()


@dataclass(frozen=True)
class Lineage:
    """What the feature tables in a directory were built from, as their metadata says."""

    calendar: Calendar
    sales_table: SalesTable
    tables: tuple[str, ...]
    absent: frozenset[str]  # features with no data in this data set
    engine: Engine = Engine.duckdb  # what built them (tables from before engines: duckdb)

    @property
    def grain(self) -> Grain:
        return self.calendar.grain

    @property
    def sales_features_table(self) -> str:
        return SALES_TABLE[self.grain]


def lineage(feature_dir: Path) -> Lineage:
    """The grain, contract and absent features recorded in ``feature_dir``'s tables.

    Raises FileNotFoundError when there is no purchase feature table.
    """
    import pyarrow.parquet as pq

    present = [n for n in ALL_FEATURE_TABLES if (feature_dir / f"{n}.parquet").exists()]
    # newest first: a build into a directory aside (the nightly cycle) swaps in its own
    # tables and may leave the other grain's purchase table behind
    sales = sorted(
        (n for n in present if n in SALES_TABLE.values()),
        key=lambda n: (feature_dir / f"{n}.parquet").stat().st_mtime_ns,
        reverse=True,
    )
    if not sales:
        raise FileNotFoundError(f"no purchase feature table in {feature_dir}")
    absent: set[str] = set()
    meta: dict[bytes, bytes] = {}
    for name in present:
        meta = pq.read_schema(feature_dir / f"{name}.parquet").metadata or {}
        found = meta.get(META_ABSENT.encode(), b"").decode()
        absent |= {f for f in found.split(",") if f}
    head = pq.read_schema(feature_dir / f"{sales[0]}.parquet").metadata or {}
    grain = Grain(head.get(META_GRAIN.encode(), b"day").decode())
    week_start = head.get(META_WEEK_START.encode(), b"monday").decode()
    sales_table = SalesTable(head.get(META_SALES_TABLE.encode(), b"orders").decode())
    engine = Engine(head.get(META_ENGINE.encode(), b"duckdb").decode())
    return Lineage(
        Calendar(grain, week_start), sales_table, tuple(present), frozenset(absent), engine
    )
