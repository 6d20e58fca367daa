"""The optional hyperparameter search: real Optuna, real CatBoost, a temporary MLflow."""

import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from demand.console import UserError
from demand.settings import get_settings
from training import model as demand_model
from training import search, tracking


def _rows(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    level = rng.choice([1.0, 20.0, 500.0], n)
    x = pd.DataFrame(
        {
            "store_id": rng.choice(["a", "b"], n).astype(str),
            "units_mean_28": level,
            "weekday": rng.integers(0, 7, n).astype(float),
        }
    )
    y = pd.Series(rng.poisson(level * (1 + 0.5 * (x["weekday"] >= 5))).astype(float))
    return x, y, level


@pytest.fixture
def settings(tmp_path):
    return get_settings(
        data_dir=tmp_path,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        iterations=60,
        search_seconds=120,
        search_trials=3,
    )


def test_the_search_tries_the_defaults_first_and_logs_every_trial(settings):
    pytest.importorskip("optuna")
    params = {**demand_model.params(settings, "CPU"), "thread_count": 1}
    train, valid = _rows(600, 1), _rows(300, 2)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment("search")
    with mlflow.start_run() as parent:
        result = search.run(
            settings,
            params,
            train,
            valid,
            ["store_id"],
            progress=lambda _: None,
            log_trial=tracking.log_trial,
        )
    assert len(result.trials) == 3
    first = result.trials.iloc[0]
    assert first["params_depth"] == params["depth"]
    assert first["params_learning_rate"] == pytest.approx(params["learning_rate"])
    # the chosen model is the best trial's, fitted with the parameters returned
    assert result.trials["value"].min() <= first["value"]
    x, y, levels = valid
    units = demand_model.predict(result.model, x, levels)
    assert np.abs(y - units).sum() / y.sum() == pytest.approx(result.trials["value"].min())
    assert result.model.get_params()["depth"] == result.params["depth"]
    assert result.params["loss_function"] == params["loss_function"]  # never searched
    children = MlflowClient(settings.tracking_uri).search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == 3
    assert all("validation_wape" in c.data.metrics for c in children)


def test_a_search_without_optuna_says_what_to_install(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as when it is not installed
    params = demand_model.params(settings, "CPU")
    with pytest.raises(UserError, match="pip install 'optuna"):
        search.run(settings, params, _rows(50, 1), _rows(50, 2), ["store_id"])


def test_the_search_is_off_by_default():
    assert get_settings().search_seconds == 0
