"""A pair's status on Spark: ``active``, ``censored`` and the age the short-history rule reads.

The hand-made weekly export of tests/life.py (a pair that stops, a slow mover, the
assortment table, rows' ``active`` flags, stock on hand, a pair never sold) built on
DuckDB and on Spark: its sales feature table is the same on both, row for row, and the
status columns are not all one value (the rules had something to decide).
"""

from __future__ import annotations

import pandas as pd
import pytest

from demand.settings import Settings
from features import build_duckdb, pipeline
from synthetic import aggregate
from tests.life import life_export

pytestmark = pytest.mark.spark

STATUS = ["active", "censored", "weeks_since_first_sale"]


def _table(folder) -> pd.DataFrame:
    frame = pd.read_parquet(folder / "store_product_weekly.parquet")
    return frame.sort_values(["store_id", "product_id", "event_timestamp"]).reset_index(drop=True)


def test_the_status_columns_equal_the_duckdb_build(spark, tmp_path):
    tables, description, *_ = life_export()
    aggregate.write(aggregate.Aggregated(tables, description), tmp_path / "raw")
    build_duckdb.build(tmp_path / "raw", tmp_path / "duckdb")
    settings = Settings(engine="spark", spark_master="local[2]", data_dir=tmp_path)
    pipeline.build_with(settings, tmp_path / "spark")

    on_duckdb, on_spark = _table(tmp_path / "duckdb"), _table(tmp_path / "spark")
    assert on_spark[STATUS].dtypes.tolist() == on_duckdb[STATUS].dtypes.tolist()
    pd.testing.assert_frame_equal(on_spark, on_duckdb, check_exact=False, rtol=0, atol=1e-9)
    assert set(on_duckdb["active"]) == {0, 1}
    assert set(on_duckdb["censored"].dropna()) == {0, 1}
    assert on_duckdb["weeks_since_first_sale"].isna().any()
    assert on_duckdb["weeks_since_first_sale"].max() == 56
