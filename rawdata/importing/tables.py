"""What a retailer's files are: their conventional names, columns, kinds and natural keys."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rawdata.schemas import WEATHER_MEASURES


class Kind(StrEnum):
    key = "key"  # an identifier: text, never empty
    text = "text"
    number = "number"  # float64
    integer = "integer"  # int64; a fractional value is refused, not rounded
    flag = "flag"  # bool: true/false, 1/0, yes/no, y/n, t/f
    date = "date"  # a day (the --date-format, else ISO 8601)
    timestamp = "timestamp"  # an instant, ISO 8601; without an offset it is UTC


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True  # the file must have the column
    nullable: bool = True  # an optional column, when given, may have empty values


@dataclass(frozen=True)
class TableSpec:
    name: str  # the raw table it becomes
    files: tuple[str, ...]  # conventional file names (without extension) it may come as
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # natural key: one row per key; a newer import wins per key
    period_column: str | None = None  # a date that must start a period of the grain

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


_MEASURES = tuple(Column(m, Kind.number, required=False) for m in WEATHER_MEASURES)

ORDERS = TableSpec(
    "orders",
    ("orders",),
    (
        Column("order_id", Kind.key),
        Column("customer_id", Kind.key),
        Column("store_id", Kind.key),
        Column("ordered_at", Kind.timestamp),
        Column("product_id", Kind.key),
        Column("quantity", Kind.integer),
        Column("unit_price", Kind.number),
        Column("promo", Kind.flag, required=False, nullable=False),
    ),
    key=("order_id", "product_id"),
)
SALES = TableSpec(
    "sales",
    ("sales",),
    (
        Column("store_id", Kind.key),
        Column("product_id", Kind.key),
        Column("date", Kind.date),
        Column("units", Kind.number),
        Column("price", Kind.number, required=False),
        Column("promo", Kind.flag, required=False),
        Column("on_hand", Kind.number, required=False),  # 0 at the period's end: censored
        Column("stockout", Kind.flag, required=False),
        Column("active", Kind.flag, required=False),  # carried in the period (overrides)
    ),
    key=("store_id", "product_id", "date"),
    period_column="date",
)
PRODUCTS = TableSpec(
    "products",
    ("products",),
    (
        Column("product_id", Kind.key),
        Column("category", Kind.key),
        Column("lifespan_days", Kind.number, required=False),
        Column("list_price", Kind.number, required=False),
    ),
    key=("product_id",),
)
STORES = TableSpec(
    "stores",
    ("stores",),
    (
        Column("store_id", Kind.key),
        Column("region_id", Kind.key),
        Column("latitude", Kind.number, required=False),
        Column("longitude", Kind.number, required=False),
    ),
    key=("store_id",),
)
WEATHER_OBSERVED = TableSpec(
    "weather_observed",
    ("weather_observed",),
    (Column("region_id", Kind.key), Column("date", Kind.date), *_MEASURES),
    key=("region_id", "date"),
)
WEATHER_FORECAST = TableSpec(
    "weather_forecast",
    ("weather_forecast",),
    (
        Column("region_id", Kind.key),
        Column("issued_at", Kind.timestamp),
        Column("valid_date", Kind.date),
        *_MEASURES,
    ),
    key=("region_id", "issued_at", "valid_date"),
)
PROMOTIONS = TableSpec(
    "promotions",
    ("promotions", "prices"),
    (
        Column("store_id", Kind.key),
        Column("product_id", Kind.key),
        Column("date", Kind.date),
        Column("promo", Kind.flag, required=False),
        Column("price", Kind.number, required=False),
        Column("planned_at", Kind.timestamp, required=False),
    ),
    # every revision of a plan is kept; a missing planned_at is filled before the key is
    # judged (importer: the later of the period start − N periods and the import's time)
    key=("store_id", "product_id", "date", "planned_at"),
    period_column="date",
)
ASSORTMENT = TableSpec(
    "assortment",
    ("assortment",),
    (
        Column("store_id", Kind.key),
        Column("product_id", Kind.key),
        Column("listed_from", Kind.date),
        Column("listed_to", Kind.date, required=False),  # empty: still listed
    ),
    key=("store_id", "product_id", "listed_from"),
)

# In the order they are checked: what a table refers to is checked before it.
SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in (
        WEATHER_OBSERVED,
        WEATHER_FORECAST,
        STORES,
        PRODUCTS,
        ORDERS,
        SALES,
        PROMOTIONS,
        ASSORTMENT,
    )
}
REQUIRED_TABLES = ("products", "stores", "weather_observed")  # plus orders or sales
OPTIONAL_TABLES = ("weather_forecast", "promotions", "assortment")
