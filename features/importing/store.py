"""Where imported rows go: the raw tables (newer import wins per key), the quarantine, the
import history, and the swap that replaces the raw directory whole.

Rule for overlapping imports: a row of a later import replaces the earlier row with the
same natural key (store, product, period for sales; see ``tables.py``); every earlier
row that is replaced by a different one is kept in ``raw/imports/<n>-<when>/``, with
the import's summary. Rows of earlier imports whose keys the new files do not carry
stay as they were, so a later import appends.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from features.importing.checks import q
from features.importing.tables import Kind, TableSpec

QUARANTINE = "quarantine"
IMPORTS = "imports"

_DUCK_TYPES = {
    Kind.key: "VARCHAR",
    Kind.text: "VARCHAR",
    Kind.number: "DOUBLE",
    Kind.integer: "BIGINT",
    Kind.flag: "BOOLEAN",
    Kind.date: "TIMESTAMP",  # a day is stored as its midnight, naive (the raw contract)
    Kind.timestamp: "TIMESTAMPTZ",
}
_ARROW_TYPES = {
    Kind.key: pa.string(),
    Kind.text: pa.string(),
    Kind.number: pa.float64(),
    Kind.integer: pa.int64(),
    Kind.flag: pa.bool_(),
    Kind.date: pa.timestamp("ns"),
    Kind.timestamp: pa.timestamp("ns", tz="UTC"),
}


def contract_select(spec: TableSpec, columns: list[str], relation: str) -> str:
    """SELECT casting ``columns`` of ``relation`` to the raw contract's types, in spec order."""
    parts = [
        f"CAST({q(c.name)} AS {_DUCK_TYPES[c.kind]}) AS {q(c.name)}"
        for c in spec.columns
        if c.name in columns
    ]
    return f"SELECT {', '.join(parts)} FROM {relation}"


def merge(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, new: str, existing: Path | None
) -> tuple[str, str | None]:
    """Create ``final_<table>`` = the new rows, plus earlier rows whose key they lack.

    Returns the final relation and the relation of earlier rows replaced by
    different ones (None without earlier rows).
    """
    final = f"final_{spec.name}"
    if existing is None or not existing.exists():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {final} AS SELECT * FROM {new}")
        return final, None
    literal = str(existing).replace("'", "''")
    old_columns = pq.read_schema(existing).names
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE old_{spec.name} AS "
        + contract_select(spec, old_columns, f"read_parquet('{literal}')")
    )
    key = ", ".join(q(k) for k in spec.key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {final} AS SELECT * FROM {new} UNION ALL BY NAME "
        f"SELECT * FROM old_{spec.name} ANTI JOIN {new} USING ({key})"
    )
    new_columns = [r[0] for r in con.execute(f"DESCRIBE {new}").fetchall()]
    kept = [c for c in con.execute(f"DESCRIBE old_{spec.name}").fetchall()]
    same = all(c[0] in new_columns for c in kept)
    listed = ", ".join(q(c[0]) for c in kept)
    replaced = f"replaced_{spec.name}"
    unchanged = f" EXCEPT ALL SELECT {listed} FROM {new}" if same else ""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {replaced} AS "
        f"SELECT {listed} FROM old_{spec.name} SEMI JOIN {new} USING ({key}){unchanged}"
    )
    return final, replaced


def write_table(con: duckdb.DuckDBPyConnection, spec: TableSpec, relation: str, path: Path) -> int:
    """Write ``relation`` sorted by its key, in the contract's Arrow types; rows written.

    Sorted and typed the same way every time, so the same rows give the same bytes.
    """
    key = ", ".join(q(k) for k in spec.key)
    table = con.sql(f"SELECT * FROM {relation} ORDER BY {key}").to_arrow_table()
    schema = pa.schema([pa.field(n, _ARROW_TYPES[spec.column(n).kind]) for n in table.column_names])
    table = table.cast(schema).combine_chunks()
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=1 << 20)
    return table.num_rows


def link_or_copy(source: Path, target: Path) -> None:
    """The same bytes at ``target`` without copying them when the file system allows."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def same_files(a: Path, b: Path, names: list[str]) -> bool:
    """Whether every named file is byte-identical (or absent) in both directories."""
    for name in names:
        x, y = a / name, b / name
        if x.exists() != y.exists() or (x.exists() and not filecmp.cmp(x, y, shallow=False)):
            return False
    return True


def swap(next_dir: Path, raw_dir: Path) -> None:
    """Replace ``raw_dir`` by ``next_dir`` (two renames; ``recover`` finishes a crash)."""
    previous = raw_dir.with_name(raw_dir.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if raw_dir.exists():
        raw_dir.rename(previous)
    next_dir.rename(raw_dir)
    shutil.rmtree(previous, ignore_errors=True)


def recover(raw_dir: Path) -> None:
    """A swap interrupted between its renames: put the previous raw directory back."""
    previous = raw_dir.with_name(raw_dir.name + ".previous")
    if previous.exists() and not raw_dir.exists():
        previous.rename(raw_dir)
