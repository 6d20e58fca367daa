"""The raw data contract: what a retailer brings, as checked code.

Each table is a pandera schema. The synthetic generator's output goes through the
same checks as a retailer's own files, so the contract cannot drift from the data
the platform is tested on. Columns marked optional may be absent; when present
they are checked like the rest. Extra columns are kept and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from demand.console import UserError


def _key(description: str) -> pa.Column:
    return pa.Column(str, nullable=False, description=description)


def _measure(description: str, *checks: pa.Check, optional: bool = False) -> pa.Column:
    return pa.Column(
        float, list(checks), nullable=True, required=not optional, description=description
    )


ORDERS = pa.DataFrameSchema(
    {
        "order_id": _key("One customer's basket; several lines share it."),
        "customer_id": _key("Who bought; repeat purchases reveal product lifespans."),
        "store_id": _key("Store (or fulfilment region) that sold the line."),
        "ordered_at": pa.Column(
            "datetime64[ns, UTC]", nullable=False, description="When the order was placed (UTC)."
        ),
        "product_id": _key("Product sold."),
        "quantity": pa.Column(
            int,
            pa.Check.gt(0),
            nullable=False,
            description="Units on the line; returns are not order lines.",
        ),
        "unit_price": pa.Column(
            float, pa.Check.ge(0), nullable=False, description="Price paid per unit."
        ),
        "promo": pa.Column(
            bool,
            nullable=False,
            required=False,
            description="Optional: the line was sold on promotion.",
        ),
    },
    coerce=True,
    name="orders",
)

PRODUCTS = pa.DataFrameSchema(
    {
        "product_id": _key("Product."),
        "category": _key("Category; weather sensitivity and lifespan are shared within it."),
        "lifespan_days": _measure(
            "Optional: declared days until a customer replaces it.", pa.Check.gt(0), optional=True
        ),
        "list_price": _measure("Optional: catalogue price.", pa.Check.ge(0), optional=True),
    },
    unique=["product_id"],
    coerce=True,
    name="products",
)

STORES = pa.DataFrameSchema(
    {
        "store_id": _key("Store."),
        "region_id": _key("Weather region the store is in."),
        "latitude": _measure("Optional.", pa.Check.in_range(-90, 90), optional=True),
        "longitude": _measure("Optional.", pa.Check.in_range(-180, 180), optional=True),
    },
    unique=["store_id"],
    coerce=True,
    name="stores",
)

# Plausible ranges of the weather measures; the importer quarantines values outside them.
WEATHER_RANGES: dict[str, tuple[float, float]] = {
    "temperature_c": (-60.0, 60.0),
    "precipitation_mm": (0.0, 2000.0),
    "sunshine_hours": (0.0, 24.0),
}
WEATHER_MEASURES = tuple(WEATHER_RANGES)

# Any non-empty subset of the measures may be given (absent measures are absent columns).
_WEATHER_MEASURES = {
    "temperature_c": _measure(
        "Mean air temperature, °C.",
        pa.Check.in_range(*WEATHER_RANGES["temperature_c"]),
        optional=True,
    ),
    "precipitation_mm": _measure(
        "Precipitation, mm per day.",
        pa.Check.in_range(*WEATHER_RANGES["precipitation_mm"]),
        optional=True,
    ),
    "sunshine_hours": _measure(
        "Hours of sunshine.", pa.Check.in_range(*WEATHER_RANGES["sunshine_hours"]), optional=True
    ),
}


def _some_measure(df: pd.DataFrame) -> bool:
    return any(m in df.columns for m in WEATHER_MEASURES)


_HAS_A_MEASURE = pa.Check(
    _some_measure,
    name="at_least_one_weather_measure",
    error=f"weather needs at least one of {', '.join(WEATHER_MEASURES)}",
)

WEATHER_OBSERVED = pa.DataFrameSchema(
    {
        "region_id": _key("Weather region."),
        "date": pa.Column("datetime64[ns]", nullable=False, description="Day observed."),
        **_WEATHER_MEASURES,
    },
    checks=[_HAS_A_MEASURE],
    unique=["region_id", "date"],
    coerce=True,
    name="weather_observed",
)

WEATHER_FORECAST = pa.DataFrameSchema(
    {
        "region_id": _key("Weather region."),
        "issued_at": pa.Column(
            "datetime64[ns, UTC]",
            nullable=False,
            description="When the forecast was published (UTC).",
        ),
        "valid_date": pa.Column(
            "datetime64[ns]", nullable=False, description="Day the forecast is for."
        ),
        **_WEATHER_MEASURES,
    },
    checks=[
        pa.Check(
            lambda df: df["valid_date"] >= df["issued_at"].dt.tz_localize(None).dt.normalize(),
            name="valid_date_not_before_issue",
        ),
        _HAS_A_MEASURE,
    ],
    unique=["region_id", "issued_at", "valid_date"],
    coerce=True,
    name="weather_forecast",
)

SALES = pa.DataFrameSchema(
    {
        "store_id": _key("Store."),
        "product_id": _key("Product."),
        "date": pa.Column(
            "datetime64[ns]",
            nullable=False,
            description="First day of the period (the day, or the first day of the week).",
        ),
        "units": pa.Column(
            float,
            pa.Check.ge(0),
            nullable=False,
            description="Units sold in the period; fractional allowed (kilograms, litres, value).",
        ),
        "price": _measure("Optional: average price paid.", pa.Check.ge(0), optional=True),
        "promo": pa.Column(
            "boolean", nullable=True, required=False, description="Optional: sold on promotion."
        ),
        "on_hand": _measure(
            "Optional: stock at the end of the period; 0 marks it censored (it ran out, so "
            "units understate demand): no label, no metric.",
            pa.Check.ge(0),
            optional=True,
        ),
        "stockout": pa.Column(
            "boolean",
            nullable=True,
            required=False,
            description="Optional: the period ran out of stock (censored, as on_hand 0).",
        ),
        "active": pa.Column(
            "boolean",
            nullable=True,
            required=False,
            description="Optional: the store carried the product in the period; overrides "
            "the assortment table and the rule of DEMAND_INACTIVE_AFTER for that period.",
        ),
    },
    unique=["store_id", "product_id", "date"],
    coerce=True,
    name="sales",
)

PROMOTIONS = pa.DataFrameSchema(
    {
        "store_id": _key("Store."),
        "product_id": _key("Product."),
        "date": pa.Column(
            "datetime64[ns]", nullable=False, description="First day of the planned period."
        ),
        "promo": pa.Column(
            "boolean", nullable=True, required=False, description="Optional: planned promotion."
        ),
        "price": _measure("Optional: planned price.", pa.Check.ge(0), optional=True),
        "planned_at": pa.Column(
            "datetime64[ns, UTC]",
            nullable=False,
            description="When the plan (or this revision of it) became known (UTC); every "
            "revision is kept. The importer fills a missing one with the later of the "
            "period's first day minus DEMAND_PROMO_KNOWN_PERIODS_BEFORE periods and the "
            "time of the import.",
        ),
    },
    unique=["store_id", "product_id", "date", "planned_at"],
    coerce=True,
    name="promotions",
)

ASSORTMENT = pa.DataFrameSchema(
    {
        "store_id": _key("Store."),
        "product_id": _key("Product."),
        "listed_from": pa.Column(
            "datetime64[ns]", nullable=False, description="First day the store carries it."
        ),
        "listed_to": pa.Column(
            "datetime64[ns]",
            nullable=True,
            description="Last day the store carries it (empty: still carried). A pair in "
            "this table is inactive outside its listings (no labels, no batch forecasts).",
        ),
    },
    checks=[
        pa.Check(
            lambda df: ~(df["listed_to"] < df["listed_from"]), name="listed_to_not_before_from"
        )
    ],
    unique=["store_id", "product_id", "listed_from"],
    coerce=True,
    name="assortment",
)

RAW_TABLES: dict[str, pa.DataFrameSchema] = {
    schema.name: schema
    for schema in (
        ORDERS,
        SALES,
        PRODUCTS,
        STORES,
        WEATHER_OBSERVED,
        WEATHER_FORECAST,
        PROMOTIONS,
        ASSORTMENT,
    )
}
GENERATED_TABLES = ("orders", "products", "stores", "weather_observed", "weather_forecast")


@dataclass(frozen=True)
class Violation:
    table: str
    column: str | None
    check: str
    example: object
    rows: int

    def __str__(self) -> str:
        where = f"column '{self.column}'" if self.column else "table"
        return (
            f"{self.table}: {where} failed {self.check} ({self.rows} row(s), e.g. {self.example!r})"
        )


class DataContractError(UserError, ValueError):
    """A raw table does not meet the contract; ``violations`` says where."""

    def __init__(self, table: str, violations: list[Violation]):
        self.table = table
        self.violations = violations
        lines = "\n  ".join(str(v) for v in violations)
        super().__init__(f"{table} does not meet the raw data contract:\n  {lines}")


def validate(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` coerced to the contract of ``table``, or raise DataContractError.

    All failures are collected (lazy validation) so one run reports every broken
    column, not just the first.
    """
    if table not in RAW_TABLES:
        raise KeyError(f"unknown raw table {table!r}; expected one of {sorted(RAW_TABLES)}")
    try:
        return RAW_TABLES[table].validate(frame, lazy=True)
    except SchemaErrors as errors:
        raise DataContractError(table, violations_of(table, errors.failure_cases)) from None


def violations_of(table: str, cases: pd.DataFrame) -> list[Violation]:
    out = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column = None if pd.isna(column) else str(column)
        example = group["failure_case"].iloc[0]
        if check == "column_in_dataframe":  # pandera names the missing column as the case
            column, example = str(example), "missing"
        out.append(Violation(table, column, str(check), example, len(group)))
    return out


def describe() -> str:
    """The contract as a Markdown table per raw table (used by ``demand contract``)."""
    parts = []
    for name, schema in RAW_TABLES.items():
        parts.append(f"### `{name}`\n\n| column | type | required | meaning |\n|---|---|---|---|")
        for column, spec in schema.columns.items():
            required = "yes" if spec.required else "optional"
            parts.append(f"| `{column}` | {spec.dtype} | {required} | {spec.description} |")
        parts.append("")
    return "\n".join(parts)
