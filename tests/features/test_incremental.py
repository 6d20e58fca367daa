"""The incremental build: with new periods appended, every table equals a full build's.

Aggregated sales (daily and weekly) build the purchase table incrementally from the
previous build's tables; order lines, changed sales or changed definitions build in
full, and the report says so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import build_duckdb
from features import transforms as t
from rawdata import raw
from synthetic import aggregate, generator

DAILY = {"grain": "day", "days": 120, "extra": 1}
WEEKLY = {"grain": "week", "days": 420, "extra": 14}


def write_aggregated(folder: Path, grain: str, days: int, extra: int = 0) -> Path:
    data = generator.generate("tiny", seed=7, days=days, extra_days=extra)
    aggregate.write(aggregate.aggregate(data, grain), folder)
    return folder


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for path in sorted(folder.glob("*.parquet")):
        frame = pd.read_parquet(path)
        keys = [c for c in frame.columns if c.endswith("_id") or c == "target_date"]
        out[path.stem] = frame.sort_values([*keys, "event_timestamp"]).reset_index(drop=True)
    return out


def assert_same_tables(got: Path, expected: Path) -> None:
    """Every table, row, column and value (NaN equal to NaN), and each table's metadata."""
    left, right = _tables(got), _tables(expected)
    assert left.keys() == right.keys()
    for name in right:
        pd.testing.assert_frame_equal(
            left[name], right[name], check_exact=True, obj=f"{name}.parquet"
        )
        meta = pq.read_schema(got / f"{name}.parquet").metadata
        assert meta == pq.read_schema(expected / f"{name}.parquet").metadata, name


@pytest.fixture(scope="module", params=[DAILY, WEEKLY], ids=["daily", "weekly"])
def appended(request, tmp_path_factory):
    """A build of an aggregated export, and the raw data of the same export one night on."""
    spec = request.param
    root = tmp_path_factory.mktemp(f"incremental_{spec['grain']}")
    before = write_aggregated(root / "raw_before", spec["grain"], spec["days"])
    build_duckdb.build(before, root / "previous")
    after = write_aggregated(root / "raw_after", spec["grain"], spec["days"], spec["extra"])
    full = build_duckdb.build(after, root / "full")
    assert full.mode == "full"
    return root, after


def test_an_appended_night_builds_incrementally_and_equals_the_full_build(appended):
    root, after = appended
    report = build_duckdb.build(after, root / "incremental", previous=root / "previous")
    assert report.mode.startswith("incremental"), report.mode
    previous_rows = pq.read_metadata(root / "previous" / _sales(root)).num_rows
    assert report.rows[_sales(root).removesuffix(".parquet")] > previous_rows
    assert_same_tables(root / "incremental", root / "full")


def test_the_incremental_build_is_chained(appended, tmp_path):
    """The incremental output carries the lineage the next night extends."""
    root, after = appended
    once = build_duckdb.build(after, tmp_path / "once", previous=root / "previous")
    again = build_duckdb.build(after, tmp_path / "again", previous=tmp_path / "once")
    assert once.mode.startswith("incremental") and again.mode.startswith("incremental (0 new")
    assert_same_tables(tmp_path / "again", root / "full")


def test_a_look_back_one_period_short_is_caught(appended, tmp_path, monkeypatch):
    """The guard of ``grid_start``: new rows whose longest window or lag misses its first
    period differ from the full build's."""
    root, after = appended
    monkeypatch.setattr(build_duckdb, "grid_start", lambda through, w: through + 3 - w.lookback)
    build_duckdb.build(after, tmp_path / "short", previous=root / "previous")
    with pytest.raises(AssertionError, match="store_product_"):
        assert_same_tables(tmp_path / "short", root / "full")


def test_sales_changed_before_the_last_period_build_in_full(appended, tmp_path):
    root, after = appended
    changed = tmp_path / "raw"
    changed.mkdir()
    for path in after.iterdir():
        (changed / path.name).write_bytes(path.read_bytes())
    sales = pd.read_parquet(changed / "sales.parquet")
    sales.loc[0, "units"] += 1  # a correction of an early period, not an append
    sales.to_parquet(changed / "sales.parquet")
    report = build_duckdb.build(changed, tmp_path / "features", previous=root / "previous")
    assert report.mode.startswith("full (sales of the periods through"), report.mode


def test_changed_definitions_build_in_full(appended, tmp_path):
    root, after = appended
    report = build_duckdb.build(
        after, tmp_path / "features", windows=t.Windows(short=5), previous=root / "previous"
    )
    assert report.mode == "full (the feature definitions changed)"


def test_order_lines_build_in_full(tiny, tmp_path):
    raw.write_raw(tiny.tables(), tmp_path / "raw")
    build_duckdb.build(tmp_path / "raw", tmp_path / "previous")
    report = build_duckdb.build(
        tmp_path / "raw", tmp_path / "features", previous=tmp_path / "previous"
    )
    assert report.mode == "full (order lines are built whole)"


def _sales(root: Path) -> str:
    return next(
        p.name
        for p in (root / "previous").glob("store_product_*.parquet")
        if "replen" not in p.name
    )
