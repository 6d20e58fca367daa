"""Spark on a real standalone cluster: ``DEMAND_SPARK_MASTER=spark://127.0.0.1:PORT``.

A master and one worker (two cores) start on 127.0.0.1 from the pyspark package
(``spark-class …Master`` / ``…Worker``), on free ports, web UIs too. A child process (a
Spark driver is one per process, and this one may hold the local session of the other
tests) builds the tiny retailer's feature tables and a training set on that cluster;
both must equal DuckDB's: every table as tests/spark/test_build.py compares them, the
training set as tests/spark/test_feast_spark.py does. The worker reads the data dir and
the staged entity frame at the same paths as the driver: on one machine it does; on a
real cluster DATA_DIR must be shared storage (feastext/offline_spark.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from demand.featurestore import open_store
from features import build_duckdb
from tests.children import free_port
from tests.spark.test_build import assert_tables_equal
from training import dataset

# a standalone application starts executors in a JVM of their own and runs every stage
# through them: minutes here, over pytest's usual per-test limit
pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
TRAIN_MAX_ROWS = 3000  # as the local-mode parity test: Spark's cost here is per stage

DRIVER = """
import sys
from pathlib import Path

from demand.featurestore import open_store
from demand.settings import get_settings
from features import pipeline
from training import dataset

out = Path(sys.argv[1])
settings = get_settings()
report = pipeline.build_with(settings, out / "features")
(out / "rows.json").write_text(__import__("json").dumps(report.rows))
built = dataset.build(open_store(settings), settings, progress=lambda _: None)
built.frame.to_pickle(out / "training.pkl")
(out / "digest").write_text(built.digest)
"""


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent  # the package ships bin/spark-class and the jars


class StandaloneCluster:
    """A standalone master and one worker, each in its own process group, logging to files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        home = _spark_home()
        self.spark_class = str(home / "bin" / "spark-class")
        self.env = {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_WORKER_DIR": str(directory / "work"),
        }

    def _start(self, name: str, arguments: list[str], ready: str) -> None:
        log = self.directory / f"{name}.log"
        process = subprocess.Popen(
            [self.spark_class, *arguments],
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 120
        while ready not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark {name} did not start: {log.read_text()[-3000:]}")
            time.sleep(0.5)

    def start(self) -> None:
        self._start(
            "master",
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(self.port), "--webui-port", str(free_port())],
            "I have been elected leader",
        )  # fmt: skip
        self._start(
            "worker",
            ["org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
             "--webui-port", str(free_port()), "--cores", "2", "--memory", "1g",
             "--work-dir", str(self.directory / "work")],
            "Successfully registered with master",
        )  # fmt: skip

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)


@pytest.fixture
def standalone(tmp_path):
    from features import spark

    spark.require_java()
    cluster = StandaloneCluster(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_the_build_and_a_training_set_on_a_standalone_cluster_equal_duckdb(
    feature_env, standalone, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMAND_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            "DEMAND_DATA_DIR": str(feature_env.data_dir),
            "DEMAND_SCALE": feature_env.scale.value,
            "DEMAND_SEED": str(feature_env.seed),
            "DEMAND_ENGINE": "spark",
            "DEMAND_SPARK_MASTER": standalone.url,
            "DEMAND_SPARK_CONF": json.dumps(
                # tiny tables: Spark's cluster default of 200 shuffle partitions makes
                # thousands of empty tasks (features/spark.py sets 8 for local sessions)
                {
                    "spark.executor.memory": "768m",
                    "spark.cores.max": "2",
                    "spark.sql.shuffle.partitions": "8",
                }
            ),
            "DEMAND_TRAIN_MAX_ROWS": str(TRAIN_MAX_ROWS),
        }
    )
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert driver.returncode == 0, driver.stderr[-5000:]
    # the work ran on the worker: it started an executor for the application
    assert list((tmp_path / "work").glob("app-*/*/stderr")), "no executor ran on the worker"

    on_duckdb = build_duckdb.build(feature_env.raw_dir, tmp_path / "duckdb")
    assert json.loads((out / "rows.json").read_text()) == on_duckdb.rows
    assert_tables_equal(tmp_path / "duckdb", out / "features", on_duckdb.rows)

    settings = feature_env.model_copy(update={"train_max_rows": TRAIN_MAX_ROWS})
    duck = dataset.build(open_store(settings), settings, progress=lambda _: None)
    got = pd.read_pickle(out / "training.pkl")
    assert len(duck.frame) > 1000
    assert list(got.columns) == list(duck.frame.columns)
    pd.testing.assert_frame_equal(got, duck.frame, check_exact=False, rtol=1e-9)
    assert (out / "digest").read_text() == duck.digest
    # the staged entity frames were read and removed
    assert not list((feature_env.data_dir / "spark" / "entities").glob("*.parquet"))
