"""`demand build-features` / `demand features` under DEMAND_ENGINE=spark when Spark cannot
run: one sentence, exit 1, no traceback, and the feature tables built before unchanged."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest

from cli.main import main
from demand.settings import get_settings
from features import build_duckdb, plan
from rawdata import raw
from synthetic import generator

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A data dir with raw tables and the feature tables of a DuckDB build."""
    root = tmp_path_factory.mktemp("spark_bad_input")
    raw.write_raw(generator.generate("tiny", seed=7, days=60).tables(), root / "raw")
    build_duckdb.build(root / "raw", root / "features")
    return root


@pytest.fixture
def spark_env(built, spark, monkeypatch, clean_demand_env):
    monkeypatch.setenv("DEMAND_DATA_DIR", str(built))
    monkeypatch.setenv("DEMAND_ENGINE", "spark")
    monkeypatch.setenv("DEMAND_SPARK_MASTER", "local[2]")
    return built


def _files(root):
    """Every file's bytes, but the writers' lock files (``.features.lock``, empty): a build
    takes the lock before it starts Spark, and leaving the file is how flock works."""
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _fails_with_one_sentence(args, data_dir, capsys, *words):
    before = _files(data_dir)
    started = time.perf_counter()
    assert main(args) == 1
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err.strip()
    print(err)  # the sentence, for `pytest -rA`
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert _files(data_dir) == before  # nothing written, nothing half-replaced
    return seconds


@pytest.mark.parametrize("command", [["build-features"], ["features", "--no-regenerate"]])
def test_without_java(spark_env, monkeypatch, tmp_path, capsys, command):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # an empty dir: no bin/java
    monkeypatch.setenv("PATH", str(tmp_path))
    _fails_with_one_sentence(command, spark_env, capsys, "Java", "openjdk-17")


@pytest.mark.parametrize("command", [["build-features"], ["features", "--no-regenerate"]])
def test_a_master_that_does_not_answer_fails_in_seconds(spark_env, monkeypatch, capsys, command):
    monkeypatch.setenv("DEMAND_SPARK_MASTER", "spark://127.0.0.1:1")
    seconds = _fails_with_one_sentence(
        command, spark_env, capsys, "spark://127.0.0.1:1 does not answer"
    )
    assert seconds < 10


def test_a_raw_table_spark_cannot_read_leaves_the_feature_tables(spark_env, capsys):
    # Brotli: pyarrow (the validation) reads it, Spark's parquet reader has no codec for it
    path = spark_env / "raw" / "stores.parquet"
    original = path.read_bytes()
    try:
        pq.write_table(pq.read_table(path), path, compression="brotli")
        _fails_with_one_sentence(
            ["build-features"], spark_env, capsys, "feature build failed on Spark", "Brotli"
        )
    finally:
        path.write_bytes(original)
    assert plan.lineage(get_settings(data_dir=spark_env).feature_dir).engine.value == "duckdb"
