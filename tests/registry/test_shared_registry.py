"""A registry shared through an MLflow tracking server: moves serialise across processes and
hosts by a PostgreSQL advisory lock keyed by model name, and fail clearly without it.

One tracking server (``team.up`` on a free port, databases of its own) serves the module;
versions are copied into it from the SQLite registry the ``base`` fixture trained.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
from mlflow import MlflowClient

from cli.main import main
from cli.serve import free_port
from demand.settings import Profile, get_settings
from ops import team
from registry import lifecycle, state, transfer
from registry.gates import Stage
from registry.lock import LockTimeout, LockUnavailable, lock_key, lock_url, registry_lock
from tests.registry.helpers import BAD, GOOD, assert_consistent, race, snapshot
from tests.servers import drop_database, require_servers

# a tracking server and two processes
pytestmark = pytest.mark.slow

SECRET = "lock-pw"  # trust auth ignores it; it must never be printed


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Team settings whose tracking server runs (on PostgreSQL) for this module."""
    require_servers()
    suffix = uuid.uuid4().hex[:10]
    database = f"postgresql+psycopg://postgres@127.0.0.1:5432/demand_test_{suffix}"
    settings = get_settings(
        profile=Profile.team,
        data_dir=tmp_path_factory.mktemp("shared_registry"),
        feast_registry_url=f"{database}_feast",
        mlflow_backend_store_uri=f"{database}_mlflow",
        mlflow_server_port=free_port(),
    )
    try:
        team.up(settings, progress=lambda _: None)
        yield settings
    finally:
        team.down(settings, progress=lambda _: None)
        drop_database(settings.feast_registry_url)
        drop_database(settings.mlflow_backend_store_uri)


def on_server(base, server, name: str, versions=(GOOD, BAD)):
    """Embedded-profile settings for model ``name`` on the server, holding copies of ``versions``.

    The profile stays embedded (Feast reads the tiny data dir for scoring); the lock
    database is named, as a client outside the team profile must.
    """
    for version in versions:
        transfer.copy_version(base, version, name, server.tracking_uri)
    settings = base.model_copy(
        update={
            "model_name": name,
            "mlflow_tracking_uri": server.tracking_uri,
            "registry_lock_url": server.mlflow_backend_store_uri,
        }
    )
    return settings, MlflowClient(server.tracking_uri, server.tracking_uri)


def test_the_lock_lives_in_the_teams_postgresql_for_every_shared_registry():
    team_db = "postgresql+psycopg://postgres@db.internal:5432/demand_mlflow"
    http = get_settings(
        profile=Profile.team,
        mlflow_tracking_uri="http://mlflow.internal:5000",
        mlflow_backend_store_uri=team_db,
    )
    assert lock_url(http) == team_db
    direct = get_settings(mlflow_tracking_uri=team_db)
    assert lock_url(direct) == team_db  # the same database, so the same lock
    named = http.model_copy(update={"registry_lock_url": "postgresql://postgres@db/locks"})
    assert lock_url(named) == "postgresql://postgres@db/locks"
    local = get_settings(profile=Profile.team, mlflow_server_port=5001)
    assert lock_url(local) == local.mlflow_backend_store_uri  # server and database both here
    # a remote server with the lock defaulting to this machine's own PostgreSQL: refused
    remote = http.model_copy(update={"mlflow_backend_store_uri": local.mlflow_backend_store_uri})
    with pytest.raises(LockUnavailable, match="this machine's PostgreSQL"):
        lock_url(remote)
    assert lock_url(get_settings(mlflow_tracking_uri="sqlite:////tmp/x/mlflow.db")) is None
    with pytest.raises(LockUnavailable, match="DEMAND_REGISTRY_LOCK_URL"):
        lock_url(get_settings(mlflow_tracking_uri="http://mlflow.internal:5000"))


def test_one_lock_per_model_name_whatever_address_reaches_the_server(server):
    def via(host: str, model: str):
        return server.model_copy(
            update={
                "mlflow_tracking_uri": f"http://{host}:{server.mlflow_server_port}",
                "model_name": model,
                "user": "holder",
            }
        )

    assert lock_key("demand_forecast") != lock_key("regional_forecast")
    with registry_lock(via("localhost", "demand_forecast")):
        started = time.monotonic()
        with (
            pytest.raises(LockTimeout) as waited,
            registry_lock(via("127.0.0.1", "demand_forecast"), timeout_s=1),
        ):
            pass
        assert 1 <= time.monotonic() - started < 10
        message = str(waited.value)
        # who to wait for, and what to do
        assert f"held by demand holder@{socket.gethostname()} pid {os.getpid()}" in message
        assert "DEMAND_REGISTRY_LOCK_TIMEOUT_S" in message
        with registry_lock(via("127.0.0.1", "regional_forecast"), timeout_s=1):
            pass  # another model has a lock of its own
    with registry_lock(via("127.0.0.1", "demand_forecast"), timeout_s=1):
        pass  # released


def test_an_unreachable_lock_database_is_a_clear_error_and_changes_nothing(
    base, server, capsys, monkeypatch
):
    settings, client = on_server(base, server, "lock_down", versions=(GOOD,))
    lifecycle.promote(settings, "1", Stage.staging, force=True, reason="set-up")
    name = settings.model_name
    before = snapshot(client, name)
    dead = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{free_port()}/demand_mlflow"
    down = settings.model_copy(update={"registry_lock_url": dead})
    shown = dead.replace(SECRET, "***")

    started = time.monotonic()
    with pytest.raises(LockUnavailable) as refused:
        lifecycle.promote(down, "1", Stage.production)  # found out before the scoring
    assert time.monotonic() - started < 15
    with pytest.raises(LockUnavailable):
        lifecycle.rollback(down, "no lock")  # the lock itself, not only the early check
    message = str(refused.value)
    assert f"registry lock database at {shown} does not answer" in message
    assert "nothing in the registry was changed" in message and SECRET not in message
    assert snapshot(client, name) == before

    monkeypatch.setenv("DEMAND_DATA_DIR", str(base.data_dir))
    monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", server.tracking_uri)
    monkeypatch.setenv("DEMAND_MODEL_NAME", name)
    monkeypatch.setenv("DEMAND_REGISTRY_LOCK_URL", dead)
    assert main(["models", "archive", "1"]) == 1
    err = capsys.readouterr().err
    assert "does not answer" in err and SECRET not in err and "Traceback" not in err
    assert snapshot(client, name) == before


def test_two_processes_promoting_through_one_tracking_server(base, server):
    """One process reaches the server as localhost, the other as 127.0.0.1: still one lock."""
    name = "race_http"
    on_server(base, server, name)
    port = server.mlflow_server_port
    race(
        base,
        (f"http://localhost:{port}", f"http://127.0.0.1:{port}"),
        name,
        (GOOD, BAD),
        DEMAND_REGISTRY_LOCK_URL=server.mlflow_backend_store_uri,
    )


def test_a_crash_behind_the_server_is_finished_by_the_next_move(base, server, monkeypatch):
    """The crash tests' point once through the REST store: the alias moved, then the process
    died; production has its holder, and the next move writes the missing records."""
    settings, client = on_server(base, server, "crash_http", versions=(GOOD, GOOD))
    lifecycle.promote(settings, "1", Stage.staging, force=True, reason="set-up")
    monkeypatch.setattr(lifecycle, "_finish", _die)
    with pytest.raises(RuntimeError, match="died"):
        lifecycle.promote(settings, "2", Stage.staging, force=True, reason="v2 instead")
    monkeypatch.undo()
    assert str(client.get_model_version_by_alias(settings.model_name, "staging").version) == "2"
    assert state.journal(client, settings.model_name)["moves"][0]["version"] == "2"
    lifecycle.archive(settings, "1", reason="after the crash")  # finishes v2's move first
    stages = assert_consistent(client, settings.model_name)
    assert stages == {"1": Stage.archived, "2": Stage.staging}


def _die(*args, **kwargs):
    raise RuntimeError("died after the switch")
