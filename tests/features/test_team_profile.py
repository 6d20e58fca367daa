"""The team profile for real: Feast's online store in Redis, its registry on PostgreSQL.

Each run gets its own PostgreSQL database and Feast project (Redis keys are
namespaced by project) and removes both afterwards.
"""

import uuid

import pandas as pd
import pytest

from demand.featurestore import Key, online_vectors, open_store
from demand.settings import Profile
from features import feature_store

psycopg = pytest.importorskip("psycopg")
redis = pytest.importorskip("redis")

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _servers_up() -> bool:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
        psycopg.connect(ADMIN, connect_timeout=2).close()
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def team(feature_env):
    if not _servers_up():
        pytest.skip("Redis at 127.0.0.1:6379 or PostgreSQL at 127.0.0.1:5432 is not running")
    suffix = uuid.uuid4().hex[:10]
    database = f"demand_test_{suffix}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    settings = feature_env.model_copy(
        update={
            "profile": Profile.team,
            "feast_project": f"demand_test_{suffix}",
            "feast_registry_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        }
    )
    try:
        feature_store.apply(settings)
        feature_store.materialize(settings)
        yield settings
    finally:
        open_store(settings).teardown()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_team_store_uses_redis_and_postgres(team):
    store = open_store(team)
    assert store.config.online_store.type == "redis"
    assert store.config.registry.path.startswith("postgresql+psycopg://")
    assert store.project == team.feast_project
    assert {fv.name for fv in store.list_feature_views()} >= {"store_product_sales"}


def test_redis_serves_what_sqlite_serves(team, feature_env):
    keys = [Key("S000", "P0300"), Key("S001", "P0000"), Key("S003", "P0700")]
    from_redis = online_vectors(open_store(team), team.feature_service, keys)
    from_sqlite = online_vectors(open_store(feature_env), feature_env.feature_service, keys)
    columns = sorted(from_sqlite.columns)
    pd.testing.assert_frame_equal(from_redis[columns], from_sqlite[columns], check_dtype=False)
    assert from_redis["units_mean_28"].notna().all()


def _project_keys(project: str) -> int:
    client = redis.Redis(host="127.0.0.1", port=6379)
    # Feast's Redis keys end with the project name: projects never share a key
    return sum(1 for key in client.scan_iter(count=5000) if key.endswith(project.encode()))


def test_teardown_leaves_no_keys_behind(team):
    """Runs last in this module: the project's keys exist, then teardown removes them."""
    assert _project_keys(team.feast_project) > 0
    open_store(team).teardown()
    assert _project_keys(team.feast_project) == 0
