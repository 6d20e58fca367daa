"""`demand feast …` on the team profile: the feast CLI reads the SQL registry on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import team_feast_project

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]
DEMAND = str(Path(sys.executable).with_name("demand"))


@pytest.fixture(scope="module")
def team(feature_env):
    with team_feast_project(feature_env, materialize=False) as settings:
        yield settings


def test_demand_feast_lists_the_team_projects_feature_views(team, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMAND_")}
    env.update(
        DEMAND_PROFILE="team",
        # an empty data dir: the embedded profile's SQLite registry would list nothing here,
        # so the views can only come from the team's registry on PostgreSQL
        DEMAND_DATA_DIR=str(tmp_path),
        DEMAND_FEAST_PROJECT=team.feast_project,
        DEMAND_FEAST_REGISTRY_URL=team.feast_registry_url,
        DEMAND_REDIS_URL=team.redis_url,
    )
    listing = subprocess.run(
        [DEMAND, "feast", "feature-views", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listing.returncode == 0, listing.stderr[-2000:]
    names = {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}
    assert names >= {"store_product_sales", "product_lifespan", "region_weather_forecast"}
