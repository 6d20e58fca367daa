"""The team profile for real: Feast's online store in Redis, its registry on PostgreSQL.

Each run gets its own PostgreSQL database and Feast project (Redis keys are
namespaced by project) and removes both afterwards. The teardown test tears down a
project of its own, so the tests pass in any order, or one at a time.
"""

import pandas as pd
import pytest
import redis

from demand.featurestore import open_store
from serving.lookup import OnlineLookup
from tests.parity import assert_online_equals_offline, online_rows
from tests.servers import REDIS, team_feast_project

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
KEYS = [("S000", "P0300"), ("S001", "P0000"), ("S003", "P0700"), ("S002", "P1100")]


@pytest.fixture(scope="module")
def team(feature_env):
    with team_feast_project(feature_env) as settings:
        yield settings


@pytest.fixture(scope="module")
def origin(feature_env):
    daily = pd.read_parquet(
        feature_env.feature_dir / "store_product_daily.parquet", columns=["event_timestamp"]
    )
    return (daily["event_timestamp"].max() - pd.Timedelta(days=1)).date()


def test_team_store_uses_redis_and_postgres(team):
    store = open_store(team)
    assert store.config.online_store.type == "redis"
    assert store.config.registry.path.startswith("postgresql+psycopg://")
    assert store.project == team.feast_project
    assert {fv.name for fv in store.list_feature_views()} >= {"store_product_sales"}


def test_redis_vector_is_the_training_row_at_the_origin(team, origin):
    store = open_store(team)
    lookup = OnlineLookup.from_store(store, team.feature_service)
    assert lookup.where == f"redis online store at {REDIS}"
    horizons = [1, 3, 5, 7]
    assert_online_equals_offline(lookup, store, team, KEYS, origin, horizons)


def test_redis_serves_what_sqlite_serves(team, feature_env, origin):
    """Every column, timestamps and on-demand outputs included, and unknown keys alike."""
    keys, horizons = [*KEYS, ("S_NOPE", "P0000")], [1, 2, 6, 7, 1]
    lookups = [
        OnlineLookup.from_store(open_store(s), s.feature_service) for s in (team, feature_env)
    ]
    (redis_rows, redis_origins), (sqlite_rows, sqlite_origins) = (
        online_rows(lookup, keys, origin, horizons) for lookup in lookups
    )
    assert redis_origins == sqlite_origins
    pd.testing.assert_frame_equal(redis_rows, sqlite_rows)
    assert redis_rows["units_mean_28"].iloc[:-1].notna().all()
    assert pd.isna(redis_rows["units_mean_28"].iloc[-1])


def _project_keys(project: str) -> int:
    host, port = REDIS.split(":")
    client = redis.Redis(host=host, port=int(port))
    # Feast's Redis keys end with the project name: projects never share a key
    return sum(1 for key in client.scan_iter(count=5000) if key.endswith(project.encode()))


def test_teardown_leaves_no_keys_behind(feature_env):
    """A project of its own: its keys exist, then teardown removes them (the module's
    project, which the other tests read, is left alone)."""
    with team_feast_project(feature_env) as own:
        assert _project_keys(own.feast_project) > 0
        open_store(own).teardown()
        assert _project_keys(own.feast_project) == 0
