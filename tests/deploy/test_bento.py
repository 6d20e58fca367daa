"""`demand bento build`: a Bento with the service, the registry's model and the feature repo."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# builds a Bento of a trained model
pytestmark = pytest.mark.container


def test_bento_build_packages_the_production_model(serving_env):
    env = dict(
        os.environ,
        DEMAND_DATA_DIR=str(serving_env.data_dir),
        DEMAND_MLFLOW_TRACKING_URI=serving_env.tracking_uri,
    )
    demand = Path(sys.executable).with_name("demand")
    done = subprocess.run(
        [str(demand), "bento", "build"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "built Bento demand_forecast_service:" in done.stdout

    home = serving_env.bentoml_home
    (bento_yaml,) = home.glob("bentos/demand_forecast_service/*/bento.yaml")
    bento = yaml.safe_load(bento_yaml.read_text())
    assert bento["labels"]["mlflow_name"] == serving_env.model_name
    assert bento["labels"]["mlflow_version"] == "1"
    assert [m["tag"].split(":")[0] for m in bento["models"]] == [serving_env.model_name]
    packaged = bento_yaml.parent / "src"
    assert (packaged / "serving" / "service.py").exists()
    assert (packaged / "demand" / "calendar.py").exists()  # serving counts periods with it
    # what serving/service.py imports, and nothing else of the project's
    carried = {p.relative_to(packaged).as_posix() for p in packaged.rglob("*.py")}
    assert {"deploy/bento.py", "training/train.py", "features/plan.py"}.isdisjoint(carried)
    assert (packaged / "feature_repo" / "feature_store.yaml").exists()
    (model_yaml,) = home.glob(f"models/{serving_env.model_name}/*/model.yaml")
    model = yaml.safe_load(model_yaml.read_text())
    assert model["labels"]["mlflow_version"] == "1"
    assert "demand_forecast_v1" in model["metadata"]["feature_contract"]
