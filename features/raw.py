"""Raw tables on disk: write the generator's output, read and validate a retailer's files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.schemas import RAW_TABLES, validate


def write_raw(tables: dict[str, pd.DataFrame], raw_dir: Path) -> dict[str, int]:
    """Validate every table, then write ``raw_dir/<table>.parquet``; rows written per table.

    All tables are checked before any is written, so a bad table leaves the
    directory as it was.
    """
    checked = {name: validate(name, tables[name]) for name in RAW_TABLES}
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in checked.items():
        tmp = raw_dir / f"{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(raw_dir / f"{name}.parquet")
    return {name: len(frame) for name, frame in checked.items()}


def read_raw(raw_dir: Path) -> dict[str, pd.DataFrame]:
    missing = [n for n in RAW_TABLES if not (raw_dir / f"{n}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"raw tables missing in {raw_dir}: {', '.join(missing)}; run `demand generate` first"
        )
    return {name: pd.read_parquet(raw_dir / f"{name}.parquet") for name in RAW_TABLES}


def validate_raw(raw_dir: Path) -> dict[str, int]:
    """Check the raw files against the contract; rows per table, or DataContractError."""
    return {name: len(validate(name, frame)) for name, frame in read_raw(raw_dir).items()}
