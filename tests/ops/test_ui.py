"""`demand feast …` and `demand ui` on the embedded profile's registries, as a user runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from demand.console import UserError
from demand.settings import Profile
from ops import ui
from tests.children import (
    free_port,
    groups_of,
    launched,
    signal_and_check_stopped,
    wait_for_output,
)

DEMAND = str(Path(sys.executable).with_name("demand"))
VIEWS = {"store_product_sales", "product_lifespan", "region_weather_forecast", "store_attributes"}


def embedded_env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMAND_")}
    return {**env, "DEMAND_DATA_DIR": str(settings.data_dir)}


@pytest.mark.slow
def test_demand_feast_lists_the_feature_views_from_any_directory(feature_env, tmp_path):
    listing = subprocess.run(
        [DEMAND, "feast", "feature-views", "list"],
        env=embedded_env(feature_env),
        cwd=tmp_path,  # not the repo: the command finds the feature repo and data dir itself
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert {line.split()[0] for line in listing.stdout.splitlines() if line.strip()} >= VIEWS


def test_feast_exit_code_comes_back(feature_env, monkeypatch):
    fails = [sys.executable, "-c", "import sys; sys.exit(3)"]
    monkeypatch.setattr(ui, "feast_command", lambda settings, args: fails)
    assert ui.run_feast(feature_env, ["feature-views", "list"]) == 3


def test_feast_command_names_the_profiles_yaml(feature_env):
    team = feature_env.model_copy(update={"profile": Profile.team})
    command = ui.feast_command(team, ["projects", "list"])
    assert command[1:5] == [
        "--chdir",
        str(feature_env.feature_repo),
        "--feature-store-yaml",
        str(feature_env.feature_repo / "feature_store.team.yaml"),
    ]
    assert command[-2:] == ["projects", "list"]


def test_ui_refuses_a_busy_port(feature_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is busy.*--feast-port"):
            ui.run_ui(feature_env, mlflow_port=free_port(), feast_port=port, progress=print)


def test_ui_without_the_team_tracking_server_says_to_start_it(feature_env):
    team = feature_env.model_copy(
        update={
            "profile": Profile.team,
            "mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}",  # nothing listens
        }
    )
    with pytest.raises(UserError, match="does not answer; run `make team-up`"):
        ui.run_ui(team, feast_port=free_port(), progress=print)


def test_ui_without_a_registry_says_to_build_features(feature_env, tmp_path):
    empty = feature_env.model_copy(update={"data_dir": tmp_path})
    with pytest.raises(UserError, match=r"no Feast registry.*make features"):
        ui.run_ui(empty, progress=print)


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


@pytest.mark.slow
def test_demand_ui_serves_both_uis_until_sigterm(feature_env, tmp_path):
    mlflow_port, feast_port = free_port(), free_port()
    log = tmp_path / "ui.log"
    command = [DEMAND, "ui", "--mlflow-port", str(mlflow_port), "--feast-port", str(feast_port)]
    with launched(command, embedded_env(feature_env), tmp_path, log) as (process, groups):
        printed = wait_for_output(process, log, "ready;", timeout=300)
        mlflow, feast = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{feast_port}"
        assert mlflow in printed and feast in printed
        assert answers(f"{mlflow}/") == 200
        assert answers(f"{feast}/") == 200
        groups += groups_of(process)
        assert len(groups) == 3  # demand's own, the MLflow UI's, the Feast UI's
        signal_and_check_stopped(process, groups, [mlflow_port, feast_port], signal.SIGTERM)
        assert "stopping the UIs" in log.read_text()
