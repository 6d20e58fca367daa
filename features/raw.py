"""Raw tables on disk: write the generator's output, read and validate what a raw dir holds.

Which tables a raw directory holds is in its ``dataset.json`` (see ``features/grain.py``):
order lines or aggregated sales, and the optional weather forecasts and promotions.
``validate_raw`` is the gate to every build: each table against its contract, then
the checks across tables (every sold store and product exists, every store's region
has weather), all reported at once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.grain import RawDescription, SalesTable, Source
from features.schemas import GENERATED_TABLES, DataContractError, Violation, validate


def write_raw(tables: dict[str, pd.DataFrame], raw_dir: Path, **extra: object) -> dict[str, int]:
    """Validate the generator's tables, then write ``raw_dir/<table>.parquet`` and its
    ``dataset.json`` (source generated); rows written per table.

    All tables are checked before any is written, so a bad table leaves the
    directory as it was.
    """
    checked = {name: validate(name, tables[name]) for name in GENERATED_TABLES}
    _cross_table_check(checked["orders"], checked["stores"], checked["products"], checked)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in checked.items():
        tmp = raw_dir / f"{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(raw_dir / f"{name}.parquet")
    RawDescription(source=Source.generated, extra=dict(extra)).write(raw_dir)
    return {name: len(frame) for name, frame in checked.items()}


def table_names(description: RawDescription) -> list[str]:
    """The raw tables a directory so described must hold."""
    sales = description.sales_table.value
    return [sales, "products", "stores", "weather_observed", *description.optional_tables]


def read_raw(raw_dir: Path) -> dict[str, pd.DataFrame]:
    description = RawDescription.read(raw_dir)
    names = table_names(description)
    missing = [n for n in names if not (raw_dir / f"{n}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"raw tables missing in {raw_dir}: {', '.join(missing)}; "
            "run `demand generate` or `demand import DIR` first"
        )
    return {name: pd.read_parquet(raw_dir / f"{name}.parquet") for name in names}


def validate_raw(raw_dir: Path) -> dict[str, int]:
    """Check the raw files against the contract, each table and across tables.

    Rows per table, or DataContractError naming every failure.
    """
    description = RawDescription.read(raw_dir)
    frames = read_raw(raw_dir)
    checked = {}
    failures: list[Violation] = []
    for name, frame in frames.items():
        try:
            checked[name] = validate(name, frame)
        except DataContractError as error:
            failures.extend(error.violations)
    if failures:
        raise DataContractError("raw data", failures)
    given = [m for m in description.weather_measures if m not in frames["weather_observed"]]
    if given:
        raise DataContractError(
            "weather_observed",
            [
                Violation("weather_observed", m, "listed in dataset.json", "missing", 0)
                for m in given
            ],
        )
    sales = checked[description.sales_table.value]
    _cross_table_check(sales, checked["stores"], checked["products"], checked)
    return {name: len(frame) for name, frame in checked.items()}


def _cross_table_check(
    sales: pd.DataFrame,
    stores: pd.DataFrame,
    products: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
) -> None:
    """Every store and product sold or planned exists; every store's region has weather."""
    violations: list[Violation] = []

    def unknown(table: str, frame: pd.DataFrame, column: str, known: pd.Series) -> None:
        values = pd.Series(frame[column].unique())
        missing = values[~values.isin(known)]
        if len(missing):
            rows = int(frame[column].isin(missing).sum())
            check = f"exists in {'stores' if column == 'store_id' else 'products'}"
            violations.append(Violation(table, column, check, missing.iloc[0], rows))

    name = "orders" if "order_id" in sales.columns else "sales"
    unknown(name, sales, "store_id", stores["store_id"])
    unknown(name, sales, "product_id", products["product_id"])
    if "promotions" in tables:
        unknown("promotions", tables["promotions"], "store_id", stores["store_id"])
        unknown("promotions", tables["promotions"], "product_id", products["product_id"])
    regions = tables["weather_observed"]["region_id"].unique()
    without = stores[~stores["region_id"].isin(regions)]
    if len(without):
        violations.append(
            Violation(
                "stores",
                "region_id",
                "has observed weather",
                without["region_id"].iloc[0],
                len(without),
            )
        )
    if violations:
        raise DataContractError("raw data (across tables)", violations)


def last_period_start(raw_dir: Path) -> pd.Timestamp:
    """The first day of the last period the raw sales cover (the last day for order lines)."""
    description = RawDescription.read(raw_dir)
    if description.sales_table is SalesTable.orders:
        table = pq.read_table(raw_dir / "orders.parquet", columns=["ordered_at"])
        last = pd.Timestamp(pc.max(table.column("ordered_at")).as_py())
        return last.tz_convert(None).normalize()
    table = pq.read_table(raw_dir / "sales.parquet", columns=["date"])
    return pd.Timestamp(pc.max(table.column("date")).as_py())
