"""The feature build's plan, engine-neutral: which steps and outputs a raw data set builds.

The portable SQL lives in ``transforms.py``; this module says which of it a data set runs
(its grain, windows and optional tables), how each output is stamped with the instant it
became known, how outputs are typed for their feature views, and the lineage every table
carries in its parquet metadata (read back by :func:`lineage`). The engines run a plan:
``build_duckdb.py`` (default) and ``build_spark.py`` (``DEMAND_ENGINE=spark``).

Timestamps follow one rule: a feature row carries the instant it became known.
A row "as of" day d is known when day d closes, at 00:00 UTC of d + 1; a
forecast is known when it is issued. A point-in-time join at an origin therefore
never sees a day that had not ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from demand.calendar import Calendar, Grain, RawDescription, SalesTable
from demand.settings import Engine
from features import transforms as t

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

# a period's status in the sales tables (transforms.purchase_features): what training's
# labels, batch forecasts and /forecast's status read, never a model input
STATUS_FIELDS = ("active", "censored")
# a pair's age in the sales tables (periods since its first sale, per grain's unit): what a
# model's short-history rule reads (demand.contract), never a model input
AGE_FIELDS = ("days_since_first_sale", "weeks_since_first_sale")

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
    def assortment(self) -> bool:
        return "assortment" in self.description.optional_tables

    @property
    def raw_tables(self) -> tuple[str, ...]:
        sales = "orders" if self.order_lines else "sales"
        optional = [
            n
            for n in ("weather_forecast", "promotions", "assortment")
            if n in self.description.optional_tables
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
        if since is not None or self.assortment:
            listed = self.assortment
            steps = [
                (name, (lambda w: t.sales_grid(since, listed)) if name == "sales_grid" else sql)
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
        stamp = known_at("day", cal, sql)
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


def known_at(period: str, calendar: Calendar, dialect: Dialect = DUCKDB) -> str:
    """The instant a row as of ``period`` became known: the start of the next period, UTC."""
    next_start = calendar.start_sql(f"{period} + 1")
    return dialect.at(f"CAST(({next_start}) AS BIGINT) * 86400")


def _as_of(relation: str, known_column: str, calendar: Calendar, dialect: Dialect) -> str:
    """Every column of a per-period relation, stamped with when its row became known."""
    stamp = known_at("day", calendar, dialect)
    return f"SELECT *, {stamp} AS event_timestamp, {stamp} AS {known_column} FROM {relation}"


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


@dataclass(frozen=True)
class BuildReport:
    rows: dict[str, int]
    seconds: float
    input_lines: int
    mode: str = "full"  # "full (why)" or "incremental (what)": what the build did and why


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


def grid_start(through: int, w: t.Windows) -> int:
    """The first period an incremental build computes: the first new period's look-back.

    The row of period ``through + 1`` reads ``w.lookback - 1`` periods before it (its
    longest lag or window); earlier ones are read by no new row.
    """
    return through + 2 - w.lookback


def period_start(plan: Plan, period: int) -> str:
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
