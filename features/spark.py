"""The Spark session of ``DEMAND_ENGINE=spark``: one per process, configured from settings.

Every Spark path of the platform (the feature build, Feast's Spark offline store,
materialization) takes its session from :func:`session`, so the configuration that matters
for identical results is set once, here, before Feast could make a session of its own
(Feast's Spark engine ignores the ``spark_conf`` of ``feature_store.yaml``; a session that
already exists is the one it uses):

- the session time zone is UTC, as DuckDB's in the build;
- parquet timestamps are written in microseconds (Spark refuses nanoseconds when it reads);
- ``DEMAND_SPARK_CONF`` comes last and wins.

What is missing (no Java, a master that does not answer) raises :class:`SparkUnavailable`
with a sentence saying what to do; the CLI prints it and exits 1.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from demand.console import UserError
from demand.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JAVA_MIN = 17  # Spark 4 runs on Java 17 and 21
# Spark's defaults for a cluster; a local session with 200 shuffle partitions spends more
# time scheduling empty tasks than computing on a laptop's tables.
LOCAL_DEFAULTS = {"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"}
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.ansi.enabled": "false",
    # pandas writes nanosecond timestamps, which Spark refuses to read; with this they
    # read as int64 nanoseconds since the epoch (features/build_spark.py converts them)
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.ui.showConsoleProgress": "false",
}
# Seconds to wait for a master's port. Spark itself retries a standalone master that does
# not answer 3 times 20 s (constants in StandaloneAppClient, no setting) and then hangs
# in getOrCreate instead of failing (measured with pyspark 4.3.0).
MASTER_CONNECT_SECONDS = 5


class SparkUnavailable(UserError, RuntimeError):
    """Spark cannot run here: what is missing, in a sentence for the user (the CLI prints
    it and exits 1, as every ``UserError``)."""


def java_version() -> int | None:
    """The major version of the Java runtime Spark would start, None when there is none."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError:
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not found:
        return None
    major = int(found.group(1))
    # Java 8 and older call themselves 1.x
    return int(found.group(2) or 0) if major == 1 else major


def require_java() -> None:
    version = java_version()
    if version is None:
        raise SparkUnavailable(
            "DEMAND_ENGINE=spark needs a Java runtime and none was found (JAVA_HOME or java "
            "on PATH). Install one: apt-get install openjdk-17-jre-headless (or `make java`)."
        )
    if version < JAVA_MIN:
        raise SparkUnavailable(
            f"DEMAND_ENGINE=spark needs Java {JAVA_MIN} or newer; found Java {version}. "
            "Install openjdk-17-jre-headless and point JAVA_HOME at it."
        )


def conf(settings: Settings) -> dict[str, str]:
    """The configuration a session of these settings starts with (later entries win)."""
    local = settings.spark_master.startswith("local")
    return {
        **(LOCAL_DEFAULTS if local else {}),
        **BASE_CONF,
        **settings.spark_conf,
    }


def session(settings: Settings) -> SparkSession:
    """The process's Spark session, started on ``settings.spark_master`` on first use.

    A session that already runs is reused (Spark allows one per process); its master must
    be the one the settings name, or results would come from another cluster than asked.
    """
    require_java()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == settings.spark_master:
        return active
    require_master(settings.spark_master)  # before Spark could hang on it
    if active is not None:
        raise SparkUnavailable(
            f"a Spark session on {active.sparkContext.master} already runs in this process; "
            f"DEMAND_SPARK_MASTER asks for {settings.spark_master}"
        )
    builder = SparkSession.builder.master(settings.spark_master).appName("demand")
    for key, value in conf(settings).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as error:  # py4j and Spark raise many kinds; all mean the same here
        raise SparkUnavailable(
            f"could not start Spark on {settings.spark_master}: {_first_line(error)}"
        ) from error
    # errors reach the caller as exceptions; the JVM's own log of them is noise on stderr
    spark.sparkContext.setLogLevel("FATAL")
    return spark


def master_addresses(master: str) -> list[tuple[str, int]]:
    """The host and port of each master a URL names: ``spark://h1:7077,h2:7077`` (standalone,
    with standby masters) or ``k8s://https://host:443``; none for local and yarn, whose
    masters Spark finds itself."""
    if master.startswith("spark://"):
        addresses = []
        for host in master.removeprefix("spark://").split(","):
            name, _, port = host.partition(":")
            if not name or not (port or "7077").isdigit():
                raise SparkUnavailable(
                    f"DEMAND_SPARK_MASTER={master} is not a master URL: "
                    "write spark://host:port[,host:port...]"
                )
            addresses.append((name, int(port or 7077)))
        return addresses
    if master.startswith("k8s://"):
        url = urlsplit(master.removeprefix("k8s://"))
        if url.hostname:
            default = 80 if url.scheme == "http" else 443
            return [(url.hostname, url.port or default)]
    return []


def require_master(master: str) -> None:
    """Fail in seconds when no master the URL names accepts a connection."""
    addresses = master_addresses(master)
    errors = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=MASTER_CONNECT_SECONDS):
                return
        except OSError as error:
            errors.append(f"{host}:{port} ({error.strerror or error})")
    if addresses:
        raise SparkUnavailable(
            f"the Spark master {master} does not answer: {'; '.join(errors)}. Start it, or "
            "point DEMAND_SPARK_MASTER at one that runs (local[*] runs Spark in this process)"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
