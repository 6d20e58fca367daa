"""Opening the Feast store of the current settings.

Shared by the feature pipeline (apply, materialize), training and serving, so
all of them see the same registry, offline and online stores. (Online lookups
by entity keys live in :mod:`serving.lookup`, the one lookup of the code base.)
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

from demand.console import quiet_library_warnings
from demand.settings import Engine, Materializer, OfflineStore, Profile, RedisType, Settings

# Feast takes a custom offline store as the dotted path of its class (a name ending
# in "OfflineStore"); its config class is the same name plus "Config".
ASOF_OFFLINE_STORE = "feastext.offline_asof.AsofDuckDBOfflineStore"
# DEMAND_ENGINE=spark: Feast's Spark store over the same FileSources (feastext/offline_spark.py)
SPARK_OFFLINE_STORE = "feastext.offline_spark.SparkFileOfflineStore"
# The same for the batch engine ("…Engine") and online stores of the platform's
# materializer (feastext/materialization.py), by Feast's online store type
PLATFORM_ENGINE = "feastext.materialization.PlatformComputeEngine"
PLATFORM_ONLINE_STORES = {
    "sqlite": "feastext.materialization.PlatformSqliteOnlineStore",
    "redis": "feastext.materialization.PlatformRedisOnlineStore",
}


def feast_environ(settings: Settings) -> dict[str, str]:
    """The DEMAND_* variables feature_store*.yaml and the data sources read.

    Set while Feast reads them (:func:`feast_environment`), or given to a `feast`
    child's environment, with the resolved values, so Feast sees the same places as
    the rest of the platform.
    """
    return {
        "DEMAND_DATA_DIR": str(settings.data_dir),
        "DEMAND_FEAST_PROJECT": settings.feast_project,
        "DEMAND_REDIS_URL": settings.redis_url,
        "DEMAND_FEAST_REGISTRY_URL": settings.feast_registry_url,
    }


@contextlib.contextmanager
def feast_environment(settings: Settings) -> Iterator[None]:
    """:func:`feast_environ` set for the block, then put back as it was.

    Feast expands the yaml's variables, and the repo's data sources read
    DEMAND_DATA_DIR, only while a store is opened or the repo parsed. Left set after
    that, they would point the next store a process opens, for other settings (a
    second data dir, a test's), at this one's registry and tables.
    """
    saved = {key: os.environ.get(key) for key in feast_environ(settings)}
    os.environ.update(feast_environ(settings))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def open_store(settings: Settings, materializing: bool = False):
    """A FeatureStore over ``settings.feature_repo`` with its data under ``settings.data_dir``.

    ``materializing``: a store to materialize with, through the platform's engine and
    online store (``DEMAND_MATERIALIZER=platform``); they write what Feast's own stores
    read, so every other store stays Feast's.
    """
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    from feast import FeatureStore  # heavy import, only when a store is needed

    # ibis (under Feast's DuckDB store) warns about its own deprecated calls on every read,
    # and Feast calls its on-demand views experimental each time they are used
    quiet_library_warnings()
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    # == and not `is`: a model_copy(update=…) may hold the plain string
    spark = settings.engine == Engine.spark
    asof = not spark and settings.offline_store == OfflineStore.asof
    platform = materializing and settings.materializer == Materializer.platform
    cluster = settings.profile == Profile.team and settings.redis_type == RedisType.redis_cluster
    with feast_environment(settings):
        if not (spark or asof or platform or cluster):
            return FeatureStore(
                repo_path=str(settings.feature_repo), fs_yaml_file=settings.feature_store_yaml
            )
        return FeatureStore(
            repo_path=str(settings.feature_repo),
            config=_rendered_config(settings, asof, platform, spark, cluster),
        )


def _rendered_config(
    settings: Settings, asof: bool, platform: bool, spark: bool = False, cluster: bool = False
):
    """The profile's yaml with the ASOF offline store in place of Feast's DuckDB store
    (``asof``), or Feast's Spark store over the same sources (``spark``: the session starts
    when a training set or a materialization first reads), and the platform's engine and
    online store in place of Feast's (``platform``); a Redis online store is Feast's
    ``redis_cluster`` type when DEMAND_REDIS_TYPE says so (``cluster``).

    Rendered here rather than in the yaml, so the yaml files (which `feast` children and
    the Bento's containers read with their own environments) stay as they are.
    """
    import yaml
    from feast.repo_config import RepoConfig

    text = os.path.expandvars(settings.feature_store_yaml.read_text())  # as Feast reads it
    raw = yaml.safe_load(text)
    if asof:
        duckdb = settings.duckdb_config
        raw["offline_store"] = {
            **raw.get("offline_store", {}),
            "type": ASOF_OFFLINE_STORE,
            "memory_limit": duckdb["memory_limit"],
            "temp_directory": duckdb["temp_directory"],
        }
    if spark:
        raw["offline_store"] = {
            "type": SPARK_OFFLINE_STORE,
            "master": settings.spark_master,
            "spark_conf": settings.spark_conf,
            # entity frames, as parquet the executors read: DATA_DIR is shared storage on a
            # cluster (feastext/offline_spark.py)
            "staging_dir": str(settings.data_dir / "spark" / "entities"),
        }
    online = raw.get("online_store") or {}
    if cluster and online.get("type") == "redis":
        online = raw["online_store"] = {**online, "redis_type": RedisType.redis_cluster.value}
    if platform and online.get("type") in PLATFORM_ONLINE_STORES:
        raw["online_store"] = {**online, "type": PLATFORM_ONLINE_STORES[online["type"]]}
        raw["batch_engine"] = {"type": PLATFORM_ENGINE}
    config = RepoConfig(**raw)
    config.repo_path = settings.feature_repo
    return config
