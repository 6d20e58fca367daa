"""A tiny retailer's export, as lines of CSV files, for the import tests to break one way each.

Two regions (R1, R2) with daily temperatures, three stores, two products, and a week of
daily sales (or order lines) in January 2024; the clock of every test is 2024-06-01.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(14)]  # a Monday first
STORES = {"S1": "R1", "S2": "R1", "S3": "R2"}
PRODUCTS = ("P1", "P2")


def base(sales: str = "sales", weekly: bool = False) -> dict[str, list[str]]:
    """File name → lines (header first) of a clean export."""
    files = {
        "stores.csv": ["store_id,region_id,latitude,longitude"]
        + [f"{s},{r},48.{i},11.{i}" for i, (s, r) in enumerate(STORES.items())],
        "products.csv": [
            "product_id,category,lifespan_days,list_price",
            "P1,ink,60,20.5",
            "P2,shoes,300,80",
        ],
        "weather_observed.csv": ["region_id,date,temperature_c"]
        + [f"{r},{d},{(i % 7) - 2}.5" for r in ("R1", "R2") for i, d in enumerate(DAYS)],
    }
    if sales == "orders":
        files["orders.csv"] = [
            "order_id,customer_id,store_id,ordered_at,product_id,quantity,unit_price"
        ]
        n = 0
        for d in DAYS[:7]:
            for s in STORES:
                n += 1
                files["orders.csv"].append(f"O{n},C{n % 5},{s},{d}T10:00:00Z,P1,{n % 3 + 1},20")
                files["orders.csv"].append(f"O{n},C{n % 5},{s},{d}T10:00:00Z,P2,1,79.5")
    else:
        days = [DAYS[0], DAYS[7]] if weekly else DAYS[:7]
        files["sales.csv"] = ["store_id,product_id,date,units,price,promo"] + [
            f"{s},{p},{d},{(i * 7 + j) % 5}.5,9.9,{'true' if j % 2 else 'false'}"
            for i, d in enumerate(days)
            for j, (s, p) in enumerate((s, p) for s in STORES for p in PRODUCTS)
        ]
    return files


def write(folder: Path, files: dict[str, list[str]], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (folder / name).write_bytes(("\n".join(lines) + "\n").encode(encoding) if lines else b"")
    return folder


def keys_of(lines: list[str], key: tuple[str, ...], skip: set[int], delimiter: str = ",") -> set:
    """Key tuples of the data lines whose line number (header = 1) is not in ``skip``."""
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = rows[0]
    out = set()
    for number, row in enumerate(rows[1:], start=2):
        if number in skip or not any(row):
            continue
        out.add(tuple(row[header.index(k)] for k in key))
    return out


def table_keys(raw_dir: Path, table: str, key: tuple[str, ...]) -> set:
    frame = pd.read_parquet(raw_dir / f"{table}.parquet", columns=list(key))
    for column in key:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            if frame[column].dt.tz is not None:
                frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            else:
                frame[column] = frame[column].dt.strftime("%Y-%m-%d")
    return set(frame.itertuples(index=False, name=None))


def export_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    """Frames (table name → rows) written as a retailer's CSV export in a new ``folder``."""
    folder.mkdir(parents=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def quiet(_: str) -> None:
    """A progress callback that prints nothing."""
