"""The feature build on Spark writes what the DuckDB build writes.

On the tiny retailer (order lines, daily) and a tiny weekly aggregated export (weeks
starting on Thursday, forecasts, plans, two weather measures of three): the same
tables, one file each, the same columns and Arrow types, the same lineage (but the
engine), and every row equal, floats to 1e-9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from demand.settings import Engine, Settings
from features import build_duckdb, pipeline, plan
from rawdata import raw
from synthetic import aggregate, generator

pytestmark = pytest.mark.spark

INCREMENTAL = {plan.META_THROUGH, plan.META_SALES_DIGEST, plan.META_DEFINITION}


@pytest.fixture(scope="module", params=["daily_order_lines", "weekly_sales"])
def data_dir(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "daily_order_lines":
        raw.write_raw(generator.generate("tiny", seed=7).tables(), root / "raw")
    else:
        export = aggregate.aggregate(
            generator.generate("tiny", seed=7, days=400),
            "week",
            "thursday",
            measures=("temperature_c", "precipitation_mm"),
            forecasts=True,
        )
        aggregate.write(export, root / "raw")
    return root


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order: by every column, the keys and timestamps first."""
    floats = [c for c in frame.columns if frame[c].dtype.kind == "f"]
    keys = [c for c in frame.columns if c not in floats]
    return frame.sort_values(keys + floats).reset_index(drop=True)


def test_every_feature_table_equals_the_duckdb_build(spark, data_dir, tmp_path):
    on_duckdb = build_duckdb.build(data_dir / "raw", tmp_path / "duckdb")
    settings = Settings(engine="spark", spark_master="local[2]", data_dir=data_dir)
    on_spark = pipeline.build_with(settings, tmp_path / "spark")

    assert on_spark.rows == on_duckdb.rows
    assert on_spark.input_lines == on_duckdb.input_lines
    assert_tables_equal(tmp_path / "duckdb", tmp_path / "spark", on_duckdb.rows)

    assert plan.lineage(tmp_path / "duckdb").engine is Engine.duckdb
    assert plan.lineage(tmp_path / "spark").engine is Engine.spark


def assert_tables_equal(on_duckdb: Path, on_spark: Path, tables) -> None:
    """The Spark build's tables in ``on_spark`` are the DuckDB build's in ``on_duckdb``: one
    file per table, the same columns, types and lineage (but the engine), every row."""
    assert sorted(p.name for p in on_spark.iterdir()) == sorted(
        f"{name}.parquet" for name in tables
    )  # one file per table, nothing left aside
    for name in tables:
        expected = pq.read_table(on_duckdb / f"{name}.parquet")
        actual = pq.read_table(on_spark / f"{name}.parquet")
        assert [(f.name, f.type) for f in actual.schema] == [
            (f.name, f.type) for f in expected.schema
        ], name
        # the same lineage but the engine; the DuckDB build's state for its next
        # incremental build is its own (the Spark build is always full)
        lineage = {
            **{k: v for k, v in expected.schema.metadata.items() if k.decode() not in INCREMENTAL},
            b"demand.engine": b"spark",
        }
        assert actual.schema.metadata == lineage, name
        expected, actual = _sorted(expected.to_pandas()), _sorted(actual.to_pandas())
        pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=0, atol=1e-9)
        assert len(actual) > 0 and np.isfinite(actual.select_dtypes("float")).any().any()
