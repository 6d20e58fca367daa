"""Raw tables on disk: write the generator's output, read and validate what a raw dir holds.

Which tables a raw directory holds is in its ``dataset.json`` (see ``demand/calendar.py``):
order lines or aggregated sales, and the optional weather forecasts and promotions.
``validate_raw`` is the gate to every build: each table against its contract, then
the checks across tables (every sold store and product exists, every store's region
has weather), all reported at once.

Memory stays bounded at any size: the generator's sales table is written chunk by
chunk (one parquet row group each), and a table bigger than ``BATCH_ROWS`` is
validated in batches of that many rows (the same pandera checks; its natural key's
uniqueness as one DuckDB query over the file, which spills to disk when it must).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandera.api.pandas.container import DataFrameSchema
from pandera.errors import SchemaErrors

from demand.calendar import RawDescription, SalesTable, Source

# violations_of: the one reading of pandera's failure cases, for whole tables and batches
from rawdata.schemas import RAW_TABLES, DataContractError, Violation, validate, violations_of

BATCH_ROWS = 2_000_000  # rows validated at a time (about 0.5 GiB as pandas frames)
KEY_COLUMNS = ("store_id", "product_id", "region_id")  # what the cross-table checks count
Progress = Callable[[str], None]
KeyCounts = dict[tuple[str, str], dict[object, int]]  # (table, column) → value → rows


@dataclass
class Chunk:
    label: str  # what the chunk covers, for progress output
    rows: pd.DataFrame | pa.Table
    promotion_days: pd.DataFrame | None = None  # order lines: the chunk's promotion calendar


@dataclass
class Stream:
    """A generated retailer ready to be written: the small tables whole, the sales
    table (``sales_table``) as chunks generated on demand, one at a time."""

    sales_table: SalesTable
    tables: dict[str, pd.DataFrame]  # products, stores, weather_observed, weather_forecast
    chunks: Iterator[Chunk]
    chunk_count: int
    true_lifespan: pd.Series | None  # product_id → days (NaN: not re-bought)


def write_raw(tables: dict[str, pd.DataFrame], raw_dir: Path, **extra: object) -> dict[str, int]:
    """Validate the generator's tables (order lines), then write ``raw_dir/<table>.parquet``
    and its ``dataset.json`` (source generated); rows per table.

    All tables are checked before any is written, so a bad table leaves the
    directory as it was.
    """
    small = {name: frame for name, frame in tables.items() if name != "orders"}
    generated = Stream(SalesTable.orders, small, iter([Chunk("", tables["orders"])]), 1, None)
    return write_stream(generated, raw_dir, progress=lambda _: None, **extra)


def write_stream(
    generated: Stream,
    raw_dir: Path,
    progress: Progress = print,
    batch_rows: int | None = None,
    **extra: object,
) -> dict[str, int]:
    """Write a generated retailer chunk by chunk, validate the files, then put them in
    place with their ``dataset.json``; rows per table.

    The files are written under temporary names and checked before any replaces
    what ``raw_dir`` held, so a bad table leaves the directory as it was. Holds one
    chunk of the sales table at a time.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    sales = generated.sales_table.value
    paths = {name: raw_dir / f"{name}.parquet.tmp" for name in (sales, *generated.tables)}
    try:
        for name, frame in generated.tables.items():
            frame.to_parquet(paths[name], index=False)
        _write_chunks(generated, paths[sales], progress)
        description = RawDescription(
            source=Source.generated, sales_table=generated.sales_table, extra=dict(extra)
        )
        progress("validating the raw tables")
        rows = _validate_files(paths, description, batch_rows or BATCH_ROWS)
    except BaseException:
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise
    other = SalesTable.orders if generated.sales_table is SalesTable.sales else SalesTable.sales
    # one data set per directory: the other contract's tables go
    for stale in (other.value, "promotions", "assortment"):
        (raw_dir / f"{stale}.parquet").unlink(missing_ok=True)
    for name, path in paths.items():
        path.replace(raw_dir / f"{name}.parquet")
    description.write(raw_dir)
    return rows


def _write_chunks(generated: Stream, path: Path, progress: Progress) -> None:
    """The sales table, one row group per chunk; only the chunk at hand is in memory."""
    writer = None
    try:
        for number, chunk in enumerate(generated.chunks, start=1):
            table = chunk.rows
            if isinstance(table, pd.DataFrame):
                table = pa.Table.from_pandas(table, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            if generated.chunk_count > 1:
                progress(
                    f"{generated.sales_table.value}: {chunk.label}, {table.num_rows:,} rows "
                    f"({number}/{generated.chunk_count})"
                )
    finally:
        if writer is not None:
            writer.close()


def table_names(description: RawDescription) -> list[str]:
    """The raw tables a directory so described must hold."""
    sales = description.sales_table.value
    return [sales, "products", "stores", "weather_observed", *description.optional_tables]


def _paths(raw_dir: Path, description: RawDescription) -> dict[str, Path]:
    paths = {name: raw_dir / f"{name}.parquet" for name in table_names(description)}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"raw tables missing in {raw_dir}: {', '.join(missing)}; "
            "run `demand generate` or `demand import DIR` first"
        )
    return paths


def read_raw(raw_dir: Path) -> dict[str, pd.DataFrame]:
    """Every raw table whole, as pandas (small data sets only; see validate_raw)."""
    paths = _paths(raw_dir, RawDescription.read(raw_dir))
    return {name: pd.read_parquet(path) for name, path in paths.items()}


def validate_raw(raw_dir: Path, batch_rows: int | None = None) -> dict[str, int]:
    """Check the raw files against the contract, each table and across tables.

    Rows per table, or DataContractError naming every failure. Tables bigger than
    ``batch_rows`` (BATCH_ROWS) are read a batch at a time.
    """
    description = RawDescription.read(raw_dir)
    return _validate_files(_paths(raw_dir, description), description, batch_rows or BATCH_ROWS)


def _validate_files(
    paths: dict[str, Path], description: RawDescription, batch_rows: int
) -> dict[str, int]:
    rows: dict[str, int] = {}
    keys: KeyCounts = {}
    failures: list[Violation] = []
    for name, path in paths.items():
        try:
            rows[name] = _validate_file(name, path, batch_rows, keys)
        except DataContractError as error:
            failures.extend(error.violations)
    if failures:
        raise DataContractError("raw data", failures)
    columns = pq.read_schema(paths["weather_observed"]).names
    given = [m for m in description.weather_measures if m not in columns]
    if given:
        raise DataContractError(
            "weather_observed",
            [
                Violation("weather_observed", m, "listed in dataset.json", "missing", 0)
                for m in given
            ],
        )
    _cross_table_check(description.sales_table.value, keys)
    return rows


def _validate_file(name: str, path: Path, batch_rows: int, keys: KeyCounts) -> int:
    """Rows of one table file after its contract; counts its key columns' values into ``keys``."""
    parquet = pq.ParquetFile(path)
    total = parquet.metadata.num_rows
    if total <= batch_rows:
        checked = validate(name, pd.read_parquet(path))
        for column in KEY_COLUMNS:
            if column in checked.columns:
                counts = checked[column].value_counts(sort=False, dropna=False)
                keys[(name, column)] = dict(counts.items())
        return total
    if _proven_clean(name, path):
        _count_keys_sql(name, path, keys)
        return total
    found: dict[tuple[str | None, str], Violation] = {}  # the first example, rows summed
    for batch in parquet.iter_batches(batch_size=batch_rows):
        try:
            _unkeyed_schema(name).validate(batch.to_pandas(), lazy=True)
        except SchemaErrors as errors:
            for v in violations_of(name, errors.failure_cases):
                seen = found.get((v.column, v.check))
                rows = v.rows + (seen.rows if seen else 0)
                found[(v.column, v.check)] = Violation(
                    name, v.column, v.check, (seen or v).example, rows
                )
        for column in KEY_COLUMNS:
            if column in batch.schema.names:
                counted = keys.setdefault((name, column), {})
                for item in pc.value_counts(batch.column(column)).to_pylist():
                    counted[item["values"]] = counted.get(item["values"], 0) + item["counts"]
    found.update({(v.column, v.check): v for v in _duplicates(name, path)})
    if found:
        raise DataContractError(name, list(found.values()))
    return total


@contextmanager
def _duckdb() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that spills to a temporary folder rather than grow past 1 GiB."""
    with tempfile.TemporaryDirectory(prefix="validate-") as spill:
        con = duckdb.connect(config={"memory_limit": "1GB", "temp_directory": spill})
        try:
            con.execute("SET enable_progress_bar = false")
            yield con
        finally:
            con.close()


# The pandera dtypes a parquet column's Arrow type meets without any conversion.
_ARROW_MEETS = {
    "str": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "float64": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
    "int64": pa.types.is_integer,
    "bool": pa.types.is_boolean,
    "boolean": pa.types.is_boolean,
    "datetime64[ns]": lambda t: t == pa.timestamp("ns"),
    "datetime64[ns, UTC]": lambda t: t == pa.timestamp("ns", "UTC"),
}


def _proven_clean(name: str, path: Path) -> bool:
    """Whether one DuckDB pass over the file shows that every row meets the table's contract.

    The fast way through a big table (a few seconds for 33 M rows): column types from
    the file's schema, nulls, range checks and the natural key's uniqueness as
    counts. False when anything fails or when a rule is not one this function knows
    (a table-wide check, an unknown check, a type that needs converting): pandera,
    batch by batch, then says what fails in its own words.
    """
    schema = RAW_TABLES[name]
    if schema.checks:
        return False
    types = {field.name: field.type for field in pq.read_schema(path)}
    failing = []  # SQL counts that must all be 0
    for column, spec in schema.columns.items():
        if column not in types:
            if spec.required:
                return False
            continue
        meets = _ARROW_MEETS.get(str(spec.dtype))
        if meets is None or not meets(types[column]):
            return False
        c = f'"{column}"'
        value = f"CAST({c} AS DOUBLE)" if str(spec.dtype) == "float64" else c
        missing = f"{c} IS NULL" + (f" OR isnan({value})" if str(spec.dtype) == "float64" else "")
        if not spec.nullable:
            failing.append(missing)
        for check in spec.checks:
            rule = _sql_rule(check.name, check.statistics, value)
            if rule is None:
                return False
            failing.append(f"NOT ({missing}) AND NOT ({rule})")
    counts = [f"count(*) FILTER ({condition})" for condition in failing]
    if schema.unique:
        # a 64-bit hash per key: a collision only sends the table to the exact path
        key = ", ".join(f'"{c}"' for c in schema.unique)
        counts.append(f"count(*) - count(DISTINCT hash({key}))")
    if not counts:
        return True
    with _duckdb() as con:
        found = con.execute(
            f"SELECT {', '.join(counts)} FROM read_parquet(?)", [str(path)]
        ).fetchone()
    return not any(found)


def _sql_rule(check: str, stats: dict[str, object], value: str) -> str | None:
    """SQL true where a value passes the pandera check (None: not a check known here)."""
    low, high = stats.get("min_value"), stats.get("max_value")
    if check == "greater_than":
        return f"{value} > {low}"
    if check == "greater_than_or_equal_to":
        return f"{value} >= {low}"
    if check == "in_range":
        above = ">=" if stats.get("include_min", True) else ">"
        below = "<=" if stats.get("include_max", True) else "<"
        return f"{value} {above} {low} AND {value} {below} {high}"
    return None


def _count_keys_sql(name: str, path: Path, keys: KeyCounts) -> None:
    """Rows per value of the key columns the cross-table checks read, in file order."""
    present = set(pq.read_schema(path).names)
    with _duckdb() as con:
        for column in (c for c in KEY_COLUMNS if c in present):
            counted = con.execute(
                f'SELECT "{column}", count(*) FROM read_parquet(?, file_row_number = true) '
                f"GROUP BY 1 ORDER BY min(file_row_number)",
                [str(path)],
            ).fetchall()
            keys[(name, column)] = dict(counted)


@cache
def _unkeyed_schema(name: str) -> DataFrameSchema:
    """The table's contract without its natural key: a batch cannot see duplicates
    across batches, so the key is checked over the whole file (``_duplicates``)."""
    schema = copy.deepcopy(RAW_TABLES[name])
    schema.unique = None
    return schema


def _duplicates(name: str, path: Path) -> list[Violation]:
    """Rows whose natural key occurs more than once, as pandera reports them (every
    copy counted, one violation per key column)."""
    key = RAW_TABLES[name].unique or []
    if not key:
        return []
    columns = ", ".join(f'"{c}"' for c in key)
    with _duckdb() as con:
        # the example is the key of the first duplicated row in file order, as pandera's
        copies, first = con.execute(
            f"""
            SELECT sum(n), arg_min(struct_pack({columns}), first_row)
            FROM (SELECT {columns}, count(*) AS n, min(file_row_number) AS first_row
                  FROM read_parquet(?, file_row_number = true)
                  GROUP BY ALL HAVING count(*) > 1)
            """,
            [str(path)],
        ).fetchone()
    if not copies:
        return []
    return [
        Violation(name, column, "multiple_fields_uniqueness", first[column], int(copies))
        for column in key
    ]


def _cross_table_check(sales: str, keys: KeyCounts) -> None:
    """Every store and product sold or planned exists; every store's region has weather."""
    violations: list[Violation] = []
    stores = set(keys[("stores", "store_id")])
    products = set(keys[("products", "product_id")])

    def unknown(table: str, column: str, known: set[object], check: str) -> None:
        counts = keys.get((table, column), {})
        missing = [value for value in counts if value not in known]  # in order of appearance
        if missing:
            rows = sum(counts[value] for value in missing)
            violations.append(Violation(table, column, check, missing[0], rows))

    for table in (sales, "promotions", "assortment"):
        unknown(table, "store_id", stores, "exists in stores")
        unknown(table, "product_id", products, "exists in products")
    regions = set(keys[("weather_observed", "region_id")])
    unknown("stores", "region_id", regions, "has observed weather")
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
