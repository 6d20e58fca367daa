"""Find a retailer's files by their conventional names and read them into DuckDB, columnar.

A CSV file is read by pyarrow with every column as text (the checks type them, so a
bad value quarantines its row instead of failing the file), numbered by the line the
user sees in an editor (the header is line 1; a row's fields on one line). A Parquet
file is scanned by DuckDB in place, numbered by its row (the first row is 1).

A file is rejected whole, with nothing written, when it cannot be read, is not
UTF-8 (CSV), has no rows, or lacks a required column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from demand.console import UserError
from rawdata.importing.tables import SPECS, TableSpec
from rawdata.schemas import WEATHER_MEASURES

FORMATS = (".csv", ".parquet")


@dataclass(frozen=True)
class ReadOptions:
    delimiter: str = ","
    decimal: str = "."
    date_format: str | None = None  # strptime format of date columns, e.g. %d/%m/%Y
    renames: dict[str, str] = field(default_factory=dict)  # their column name → ours


@dataclass
class SourceFile:
    """One file, registered in DuckDB as ``relation`` with its columns and a ``_line``."""

    spec: TableSpec
    path: Path
    relation: str
    columns: list[str]  # the file's columns, renamed
    types: dict[str, str]  # DuckDB type per column (VARCHAR for every CSV column)
    rows: int
    unsplittable: list[tuple[int, str]] = field(default_factory=list)  # CSV (line, text)

    @property
    def name(self) -> str:
        return self.path.name


def find_files(folder: Path) -> dict[str, Path]:
    """Table name → file, by conventional names (``sales.csv``, ``prices.parquet``…)."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; `demand import DIR` reads the files in DIR")
    found: dict[str, Path] = {}
    for spec in SPECS.values():
        matches = [
            folder / f"{stem}{ext}"
            for stem in spec.files
            for ext in FORMATS
            if (folder / f"{stem}{ext}").is_file()
        ]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise UserError(f"{folder}: {names} are all {spec.name}; keep one of them")
        if matches:
            found[spec.name] = matches[0]
    if "orders" in found and "sales" in found:
        raise UserError(
            f"{folder}: both {found['orders'].name} (order lines) and {found['sales'].name} "
            "(aggregated sales); bring one of them"
        )
    if not found:
        expected = ", ".join(sorted({s for spec in SPECS.values() for s in spec.files}))
        raise UserError(f"{folder}: no file to import; expected .csv or .parquet named {expected}")
    return found


def read(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path, options: ReadOptions
) -> SourceFile:
    relation = f"src_{spec.name}"
    if path.suffix == ".parquet":
        source = _read_parquet(con, spec, path, relation, options)
    else:
        source = _read_csv(con, spec, path, relation, options)
    _require_columns(source)
    return source


def _renamed(names: list[str], options: ReadOptions, path: Path) -> list[str]:
    out = [options.renames.get(n, n) for n in names]
    repeated = sorted({n for n in out if out.count(n) > 1})
    if repeated:
        raise UserError(f"{path.name}: column {', '.join(repeated)} appears more than once")
    return out


def _read_csv(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    path: Path,
    relation: str,
    options: ReadOptions,
) -> SourceFile:
    try:
        with open(path, "rb") as handle:
            head = handle.readline()
    except OSError as error:
        raise UserError(f"{path.name}: cannot be read ({error.strerror})") from None
    if not head.strip():
        raise UserError(f"{path.name} is empty: a header line and rows are expected")
    try:
        header = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(_not_utf8(path)) from None
    their = [
        c.strip() for c in next(csv.reader([header.rstrip("\r\n")], delimiter=options.delimiter))
    ]
    if len(their) < 2:
        raise UserError(
            f"{path.name}: one column only ({their[0]!r}) with delimiter "
            f"{options.delimiter!r}; is it separated by another character? (--delimiter)"
        )
    columns = _renamed(their, options, path)
    unsplittable: list[tuple[int, str]] = []

    def keep_aside(row: pacsv.InvalidRow) -> str:  # only rows with a wrong field count
        unsplittable.append((row.number or 0, row.text))
        return "skip"

    def load(threads: bool) -> pa.Table:
        unsplittable.clear()
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=columns, skip_rows=1, use_threads=threads),
            parse_options=pacsv.ParseOptions(
                delimiter=options.delimiter,
                invalid_row_handler=keep_aside,
                ignore_empty_lines=False,  # kept (as empty rows) so that lines stay numbered
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    try:
        table = load(threads=True)
        if any(number == 0 for number, _ in unsplittable):  # line numbers need one thread
            table = load(threads=False)
    except pa.ArrowInvalid as error:
        if "UTF8" in str(error):
            raise UserError(_not_utf8(path)) from None
        raise UserError(f"{path.name}: not a readable CSV file ({error})") from None
    lines = np.arange(2, 2 + table.num_rows + len(unsplittable), dtype=np.int64)
    if unsplittable:
        lines = np.setdiff1d(lines, np.array([n for n, _ in unsplittable]), assume_unique=True)
    table = table.append_column("_line", pa.array(lines))
    # a blank line is no row: every field empty (looked for only if a first field is empty)
    if pc.any(pc.equal(table.column(columns[0]), "")).as_py():
        blank = None
        for name in columns:
            empty = pc.equal(table.column(name), "")
            blank = empty if blank is None else pc.and_(blank, empty)
        table = table.filter(pc.invert(blank))
    unsplittable = [(n, text) for n, text in unsplittable if text.strip()]
    if table.num_rows + len(unsplittable) == 0:
        raise UserError(f"{path.name} has a header but no rows")
    con.register(f"{relation}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT * FROM {relation}_arrow")
    types = dict.fromkeys(columns, "VARCHAR")
    return SourceFile(spec, path, relation, columns, types, table.num_rows, unsplittable)


def _not_utf8(path: Path) -> str:
    return (
        f"{path.name} is not UTF-8 text; export it as UTF-8 (e.g. "
        f"`iconv -f latin1 -t utf-8 {path.name} > fixed.csv`)"
    )


def _read_parquet(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    path: Path,
    relation: str,
    options: ReadOptions,
) -> SourceFile:
    try:
        metadata = pq.read_metadata(path)
        their = list(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as error:
        raise UserError(f"{path.name}: not a readable Parquet file ({error})") from None
    if metadata.num_rows == 0:
        raise UserError(f"{path.name} has no rows")
    columns = _renamed(their, options, path)
    select = ", ".join(
        f'"{t}" AS "{o}"' for t, o in zip(their, columns, strict=True) if t != "_line"
    )
    literal = str(path).replace("'", "''")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT {select}, "
        f"CAST(file_row_number + 1 AS BIGINT) AS _line "
        f"FROM read_parquet('{literal}', file_row_number = true)"
    )
    described = con.execute(f"DESCRIBE {relation}").fetchall()
    types = {row[0]: row[1] for row in described if row[0] != "_line"}
    return SourceFile(spec, path, relation, columns, types, metadata.num_rows)


def _require_columns(source: SourceFile) -> None:
    missing = [c for c in source.spec.required if c not in source.columns]
    if missing:
        raise UserError(
            f"{source.name}: required column {', '.join(missing)} missing "
            f"(columns found: {', '.join(source.columns)}); rename yours with "
            f"--map THEIR_NAME={missing[0]}"
        )
    if source.spec.name.startswith("weather") and not any(
        m in source.columns for m in WEATHER_MEASURES
    ):
        raise UserError(
            f"{source.name}: no weather measure; give at least one of {', '.join(WEATHER_MEASURES)}"
        )
