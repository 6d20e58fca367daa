"""Two feature repos share one Feast project on the team's servers.

Repo A is the platform's ``feature_repo/``; repo B, written here, is another team's:
footfall per store, over a parquet of its own, with the ``store`` entity declared
again (identically). Both are applied by two processes at once, twice: the second
round is the one where Feast's own ``feast apply`` would delete the other repo's
objects. Then a feature service made of both repos' views must answer offline
(DuckDB) and online (Redis) with the values the tables hold.
"""

import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from demand.console import UserError
from demand.featurestore import open_store
from demand.settings import REPO_ROOT, Profile
from features import publish
from tests.servers import require_servers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FOOTFALL_VIEWS = {"store_footfall", "store_footfall_weekly"}


# Repo B: its own module names (``footfall``), so it never shadows repo A's modules.
FOOTFALL_REPO = '''
"""Footfall: visitors counted at each store's doors, per day."""
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

store = Entity(
    name="store",
    join_keys=["store_id"],
    value_type=ValueType.STRING,
    description="A store or fulfilment region that sells products.",
)
store_footfall_daily = FileSource(
    name="store_footfall_daily",
    path={path!r},
    timestamp_field="event_timestamp",
    description="Visitors per store and day.",
)
store_footfall = FeatureView(
    name="store_footfall",
    entities=[store],
    ttl=timedelta(days=2),
    schema=[Field(name="visitors", dtype=Int64)],
    source=store_footfall_daily,
)
'''
WEEKLY_VIEW = """
store_footfall_weekly = FeatureView(
    name="store_footfall_weekly",
    entities=[store],
    ttl=timedelta(days=2),
    schema=[Field(name="visitors_7", dtype=Float64)],
    source=store_footfall_daily,
)
"""

# One process: import everything once, then per round meet the other process and apply.
APPLY = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import feast  # the slow imports before the first meeting point
    from demand.settings import get_settings
    from features import publish

    barrier, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for round in range(rounds):
        meeting = barrier / f"round{round}"
        meeting.mkdir(parents=True, exist_ok=True)
        (meeting / name).touch()
        deadline = time.time() + 120
        while len(list(meeting.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.01)
        _, changes = publish.apply(get_settings())
        print("CHANGES", json.dumps(changes), flush=True)
    """
)


def _footfall(settings) -> pd.DataFrame:
    """Visitors per store and day, on the same days as the purchase features."""
    stores = pd.read_parquet(settings.raw_dir / "stores.parquet", columns=["store_id"])
    days = pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet", columns=["event_timestamp"]
    )["event_timestamp"].drop_duplicates()
    frame = stores.merge(days.to_frame(), how="cross")
    day = (frame["event_timestamp"] - days.min()).dt.days
    frame["visitors"] = (1000 * frame["store_id"].str[1:].astype(int) + day).astype("int64")
    frame["visitors_7"] = frame["visitors"] / 7.0
    return frame


def _write_repo(repo: Path, parquet: Path, weekly: bool) -> None:
    repo.mkdir(exist_ok=True)
    source = FOOTFALL_REPO.format(path=str(parquet)) + (WEEKLY_VIEW if weekly else "")
    (repo / "footfall.py").write_text(source)
    team_yaml = REPO_ROOT / "feature_repo" / "feature_store.team.yaml"
    (repo / "feature_store.team.yaml").write_text(team_yaml.read_text())


def _apply_concurrently(env: dict, repos: dict[str, Path], barrier: Path, rounds: int):
    """Each repo applied by its own process, the two starting each round together."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", APPLY, str(barrier), name, str(rounds)],
            env={**env, "DEMAND_FEATURE_REPO": str(repo)},
            cwd=barrier.parent,  # no stray .env
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, repo in repos.items()
    }
    changes = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"apply of {name} failed:\n{err[-3000:]}"
        lines = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("CHANGES ")]
        changes[name] = [json.loads(line) for line in lines]
    return [{name: changes[name][r] for name in repos} for r in range(rounds)]


@pytest.fixture(scope="module")
def shared(feature_env, tmp_path_factory):
    require_servers()
    suffix = uuid.uuid4().hex[:10]
    database = f"demand_test_{suffix}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    team = feature_env.model_copy(
        update={
            "profile": Profile.team,
            "feast_project": f"demand_shared_{suffix}",
            "feast_registry_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        }
    )
    work = tmp_path_factory.mktemp("shared")
    parquet = work / "store_footfall_daily.parquet"
    footfall = _footfall(feature_env)
    footfall.to_parquet(parquet)
    repo_b = work / "footfall_repo"
    _write_repo(repo_b, parquet, weekly=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DEMAND_PROFILE": "team",
        "DEMAND_DATA_DIR": str(team.data_dir),
        "DEMAND_FEAST_PROJECT": team.feast_project,
        "DEMAND_FEAST_REGISTRY_URL": team.feast_registry_url,
        "DEMAND_REDIS_URL": team.redis_url,
    }
    repos = {"platform": team.feature_repo, "footfall": repo_b}
    try:
        first, second = _apply_concurrently(env, repos, work / "barrier", rounds=2)
        yield {
            "settings": team,
            "repo_b": repo_b,
            "parquet": parquet,
            "footfall": footfall,
            "rounds": (first, second),
        }
    finally:
        open_store(team).teardown()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _names(objects) -> list[str]:
    return sorted(o.name for o in objects if o.name != "__dummy")


def test_registry_holds_both_repos_once(shared, feature_env):
    store = open_store(shared["settings"])
    platform = open_store(feature_env)  # the platform's repo alone, embedded profile
    views = _names(store.list_feature_views())
    assert views == sorted({*_names(platform.list_feature_views()), *FOOTFALL_VIEWS})
    assert _names(store.list_on_demand_feature_views()) == _names(
        platform.list_on_demand_feature_views()
    )
    assert _names(store.list_entities()) == _names(platform.list_entities())  # store shared
    sources = _names(store.list_data_sources())
    assert sources == sorted({*_names(platform.list_data_sources()), "store_footfall_daily"})
    assert _names(store.list_feature_services()) == _names(platform.list_feature_services())
    for name in FOOTFALL_VIEWS:
        assert store.get_feature_view(name).tags[publish.OWNER_TAG] == "footfall_repo"
    assert store.get_feature_view("store_product_sales").tags[publish.OWNER_TAG] == ("feature_repo")
    # the entity both repos declare has one owner, whichever process came first
    owner = store.get_entity("store").tags[publish.OWNER_TAG]
    assert owner in {"feature_repo", "footfall_repo"}


def test_first_round_creates_and_second_changes_nothing(shared):
    first, second = shared["rounds"]
    assert "Created feature view store_footfall" in first["footfall"]
    assert "Created feature view store_product_sales" in first["platform"]
    # each repo now sees the other's objects: Feast's own apply would delete them here
    assert second == {"platform": [], "footfall": []}


def test_a_repo_updates_and_deletes_only_its_own(shared):
    settings = shared["settings"].model_copy(update={"feature_repo": shared["repo_b"]})
    _write_repo(shared["repo_b"], shared["parquet"], weekly=False)
    module = shared["repo_b"] / "footfall.py"
    module.write_text(
        module.read_text().replace(
            'name="store_footfall",', 'name="store_footfall",\n    description="At the doors.",'
        )
    )
    try:
        store, changes = publish.apply(settings)
        assert changes == [
            "Updated feature view store_footfall",
            "Deleted feature view store_footfall_weekly",
        ]
        views = set(_names(store.list_feature_views()))
        assert "store_footfall_weekly" not in views
        assert {"store_footfall", "store_product_sales", "store_attributes"} <= views
        assert store.get_entity("store").name == "store"  # still there for repo A's views
    finally:
        _write_repo(shared["repo_b"], shared["parquet"], weekly=True)
        publish.apply(settings)


def test_a_repo_may_not_redefine_another_repos_object(shared, tmp_path):
    """A third repo declaring ``store`` differently is refused, and writes nothing."""
    repo_c = tmp_path / "shop_repo"
    _write_repo(repo_c, shared["parquet"], weekly=False)
    (repo_c / "footfall.py").unlink()
    (repo_c / "shop.py").write_text(
        FOOTFALL_REPO.format(path=str(shared["parquet"]))
        .replace("A store or fulfilment region that sells products.", "A shop.")
        .replace("store_footfall", "shop_footfall")
    )
    settings = shared["settings"].model_copy(update={"feature_repo": repo_c})
    with pytest.raises(UserError, match=r"redefines objects another repo owns.*entity 'store'"):
        publish.apply(settings)
    store = open_store(shared["settings"])
    assert store.get_entity("store").description.startswith("A store or fulfilment")
    assert "shop_footfall" not in _names(store.list_feature_views())


@pytest.fixture(scope="module")
def combined(shared):
    """A model team's service over both repos' views, built from the registry."""
    from feast import FeatureService

    store = open_store(shared["settings"])
    sales = store.get_feature_view("store_product_sales")
    service = FeatureService(
        name="footfall_demand_v1",
        features=[sales[["units_lag_1", "units_mean_7"]], store.get_feature_view("store_footfall")],
    )
    store.apply([service])  # partial: applies the service, deletes nothing
    return store, service


def _sales(settings) -> pd.DataFrame:
    return pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp", "units_lag_1", "units_mean_7"],
    )


KEYS = [("S000", "P0300"), ("S001", "P0000"), ("S003", "P0700")]


def test_combined_service_offline(shared, combined):
    store, service = combined
    sales = _sales(shared["settings"])
    when = sales["event_timestamp"].sort_values().unique()[-10]  # a day inside the history
    entity_df = pd.DataFrame(
        {
            "store_id": [s for s, _ in KEYS],
            "product_id": [p for _, p in KEYS],
            "event_timestamp": [when] * len(KEYS),
        }
    )
    got = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    got = got.set_index(["store_id", "product_id"]).sort_index()
    expected = sales[sales["event_timestamp"] == when].set_index(["store_id", "product_id"])
    expected = expected.loc[got.index]
    footfall = shared["footfall"]
    visitors = footfall[footfall["event_timestamp"] == when].set_index("store_id")["visitors"]
    expected["visitors"] = [visitors[s] for s, _ in expected.index]
    columns = ["units_lag_1", "units_mean_7", "visitors"]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_dtype=False)


def test_combined_service_online_from_redis(shared, combined):
    store, service = combined
    settings = shared["settings"]
    end = publish.latest_feature_time(settings) + timedelta(seconds=1)
    store.materialize(
        start_date=datetime(1970, 1, 2, tzinfo=UTC),
        end_date=end,
        feature_views=["store_product_sales", "store_footfall"],
    )
    rows = [{"store_id": s, "product_id": p} for s, p in KEYS]
    got = store.get_online_features(features=service, entity_rows=rows).to_df()
    sales = _sales(settings)
    latest = sales.sort_values("event_timestamp").groupby(["store_id", "product_id"]).last()
    footfall = shared["footfall"]
    newest = footfall[footfall["event_timestamp"] == footfall["event_timestamp"].max()]
    visitors = newest.set_index("store_id")["visitors"]
    expected = latest.loc[KEYS, ["units_lag_1", "units_mean_7"]].reset_index(drop=True)
    expected["visitors"] = [visitors[s] for s, _ in KEYS]
    columns = ["units_lag_1", "units_mean_7", "visitors"]
    pd.testing.assert_frame_equal(got[columns], expected, check_dtype=False)
    assert got["visitors"].notna().all() and got["units_mean_7"].notna().all()
