"""The gates read a run's baselines by the names it logged them under: the windowed names
of today's runs (``moving_average_4w``), the legacy ones of older versions
(``moving_average_28``). A real MLflow registry (SQLite), no model files needed."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient

from registry.gates import staging_gate
from registry.state import run_facts


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline_names")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri, uri)
    client.create_experiment("names", artifact_location=root.as_uri())
    client.create_registered_model("m")
    return client


def _version(client, metrics: dict[str, float], params: dict[str, str]):
    experiment = client.get_experiment_by_name("names").experiment_id
    run = client.create_run(experiment)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    return client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)


def test_a_weekly_run_is_gated_on_the_best_of_its_windowed_baselines(client):
    version = _version(
        client,
        {
            "wape": 0.55,
            "seasonal_naive_52w_wape": 0.70,
            "moving_average_4w_wape": 0.60,
            "naive_1w_wape": 0.50,
            "naive_1w_wape_h1": 0.10,  # per-horizon keys are not baselines
        },
        {"baselines": "seasonal_naive_52w,moving_average_4w,naive_1w"},
    )
    backtest = run_facts(client, version).backtest
    assert backtest.baselines == {
        "seasonal_naive_52w": 0.70,
        "moving_average_4w": 0.60,
        "naive_1w": 0.50,
    }
    result = staging_gate(backtest, [])
    assert not result.passed
    assert "WAPE 0.5500 is not below naive_1w 0.5000" in result.explain()


def test_a_version_logged_with_the_legacy_names_still_gates(client):
    legacy = {"wape": 0.40, "seasonal_naive_wape": 0.60, "moving_average_28_wape": 0.45}
    version = _version(client, {**legacy, "naive_wape": 0.70}, {})
    backtest = run_facts(client, version).backtest
    assert backtest.baselines == {"seasonal_naive": 0.60, "moving_average_28": 0.45}
    check = staging_gate(backtest, []).checks[0]
    assert check.passed
    assert check.detail.startswith("WAPE 0.4000 < moving_average_28 0.4500")
    worse = run_facts(client, _version(client, {**legacy, "wape": 0.5}, {})).backtest
    assert not staging_gate(worse, []).passed


def test_a_baseline_the_run_names_but_did_not_log_fails_the_gate(client):
    version = _version(
        client,
        {"wape": 0.1, "moving_average_4w_wape": 0.6},
        {"baselines": "seasonal_naive_52w,moving_average_4w"},
    )
    backtest = run_facts(client, version).backtest
    assert math.isnan(backtest.baselines["seasonal_naive_52w"])
    result = staging_gate(backtest, [])
    assert not result.passed
    assert "no WAPE for seasonal_naive_52w" in result.explain()
