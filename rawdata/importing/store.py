"""Where imported rows go: the raw tables (newer import wins per key), the quarantine, the
import history, and the swap that replaces the raw directory whole.

Rule for overlapping imports: a row of a later import replaces the earlier row with the
same natural key (store, product, period for sales; see ``tables.py``); every earlier
row that is replaced by a different one is kept in ``raw/imports/<n>-<when>/``, with
the import's summary. Rows of earlier imports whose keys the new files do not carry
stay as they were, so a later import appends. The new directory replaces the old one
whole (``demand.swap``).
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from rawdata.importing.checks import q
from rawdata.importing.tables import Kind, TableSpec

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


def contract_select(spec: TableSpec, columns: list[str], relation: str, order: str = "") -> str:
    """SELECT casting ``columns`` of ``relation`` to the raw contract's types, in spec order;
    ``order`` (SQL) adds the column ``_order`` the rows are written in."""
    parts = [
        f"CAST({q(c.name)} AS {_DUCK_TYPES[c.kind]}) AS {q(c.name)}"
        for c in spec.columns
        if c.name in columns
    ]
    if order:
        parts.append(f"{order} AS _order")
    return f"SELECT {', '.join(parts)} FROM {relation}"


def merge(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, new: str, existing: Path | None
) -> tuple[str, str | None]:
    """``final_<table>`` = earlier rows whose key the new rows lack, then the new rows.

    Rows keep their order (earlier rows as stored, new rows as in their file; column
    ``_order``), so the same files give the same bytes without sorting every row.
    Returns the final relation and the relation of earlier rows replaced by
    different ones (None without earlier rows).
    """
    final = f"final_{spec.name}"
    if existing is None or not existing.exists():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {final} AS SELECT * FROM {new}")
        return final, None
    literal = str(existing).replace("'", "''")
    old_columns = pq.read_schema(existing).names
    source = f"read_parquet('{literal}', file_row_number = true)"
    # earlier rows keep their stored order, before every new row
    earlier = "file_row_number - (1::BIGINT << 62)"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW old_{spec.name} AS "
        + contract_select(spec, old_columns, source, order=earlier)
    )
    key = ", ".join(q(k) for k in spec.key)
    new_columns = {r[0] for r in con.execute(f"DESCRIBE {new}").fetchall()} - {"_order"}
    values = [c for c in old_columns if c in spec_names(spec) and c not in spec.key]
    same_columns = set(values) | set(spec.key) == new_columns
    differs = (
        f"hash({', '.join('o.' + q(v) for v in values)}) <> "
        f"hash({', '.join('n.' + q(v) for v in values)})"
        if same_columns and values
        else ("false" if same_columns else "true")
    )
    # one join on the key: which earlier rows the new ones hit, and whether they differ
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE hit_{spec.name} AS "
        f"SELECT o._order, {differs} AS _differs "
        f"FROM old_{spec.name} o JOIN {new} n USING ({key})"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {final} AS "
        f"SELECT * FROM old_{spec.name} ANTI JOIN hit_{spec.name} USING (_order) "
        f"UNION ALL BY NAME SELECT * FROM {new}"
    )
    listed = ", ".join(q(c) for c in old_columns if c in spec_names(spec))
    replaced = f"replaced_{spec.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {replaced} AS SELECT {listed} FROM old_{spec.name} "
        f"SEMI JOIN (SELECT _order FROM hit_{spec.name} WHERE _differs) USING (_order)"
    )
    return final, replaced


def spec_names(spec: TableSpec) -> set[str]:
    return {c.name for c in spec.columns}


def write_table(con: duckdb.DuckDBPyConnection, spec: TableSpec, relation: str, path: Path) -> int:
    """Write ``relation`` in its ``_order`` (else by key), in the contract's Arrow types,
    batch by batch (memory stays bounded); rows written.

    Ordered and typed the same way every time, so the same rows give the same bytes.
    """
    columns = [r[0] for r in con.execute(f"DESCRIBE {relation}").fetchall()]
    order = "_order" if "_order" in columns else ", ".join(q(k) for k in spec.key)
    data = [c for c in columns if c != "_order"]
    schema = pa.schema([pa.field(n, _ARROW_TYPES[spec.column(n).kind]) for n in data])
    listed = ", ".join(q(c) for c in data)
    reader = con.sql(f"SELECT {listed} FROM {relation} ORDER BY {order}").to_arrow_reader(1 << 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in reader:
            writer.write_batch(batch.cast(schema), row_group_size=1 << 20)
            rows += batch.num_rows
    return rows


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
