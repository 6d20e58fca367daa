"""Fixtures of a served model (a trained model, a service), shared by serving and deploy tests."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from cli import serve as cli
from demand.featurestore import open_store
from demand.settings import Settings
from training import train


@pytest.fixture(scope="session")
def serving_env(feature_env, tmp_path_factory) -> Settings:
    """Settings with one registered version (v1) of the model, aliased production."""
    mlflow_dir = tmp_path_factory.mktemp("serving_mlflow")
    settings = feature_env.model_copy(
        update={
            "iterations": 40,
            "mlflow_tracking_uri": f"sqlite:///{mlflow_dir}/mlflow.db",
            "origin_every_days": 3,
            "serve_reload_seconds": 0.0,  # tests reload explicitly
        }
    )
    result = train.run(settings, progress=lambda _: None)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.set_registered_model_alias(settings.model_name, "production", result.version)
    return settings


@pytest.fixture(scope="session")
def service_environ(serving_env):
    """DEMAND_* variables for a service constructed in this process (as `bentoml serve` would)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMAND_DATA_DIR", str(serving_env.data_dir))
        patch.setenv("DEMAND_MLFLOW_TRACKING_URI", serving_env.tracking_uri)
        patch.setenv("DEMAND_SERVE_RELOAD_SECONDS", "0")
        patch.setenv("DEMAND_SERVE_MAX_ITEMS", "50")
        patch.setenv("BENTOML_HOME", str(serving_env.bentoml_home))
        yield serving_env.model_copy(update={"serve_max_items": 50})


@pytest.fixture(scope="session")
def known_keys(serving_env):
    """(store, product) pairs the online store holds, and its origin (latest materialized day)."""
    import pandas as pd

    daily = pd.read_parquet(
        serving_env.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    last = daily["event_timestamp"].max()
    latest = daily[daily["event_timestamp"] == last].drop_duplicates(["store_id", "product_id"])
    origin = (last - pd.Timedelta(days=1)).date()
    return list(latest[["store_id", "product_id"]].itertuples(index=False, name=None)), origin


@pytest.fixture(scope="session")
def feast_store(serving_env):
    return open_store(serving_env)


@pytest.fixture(scope="session")
def client(service_environ):
    """The service over HTTP in this process: one app per process (to_asgi() registers
    BentoML's own request metrics, and a second registration of them fails)."""
    from starlette.testclient import TestClient

    from serving.service import DemandForecast

    with TestClient(DemandForecast.to_asgi(), raise_server_exceptions=False) as http:
        yield http


@pytest.fixture(scope="session")
def server(serving_env, tmp_path_factory):
    """One real `bentoml serve` of the tiny model, shared by the modules that talk to one."""
    port = cli.free_port()
    log = tmp_path_factory.mktemp("serve") / "bentoml.log"
    process = cli.start_server(serving_env, port, log=log, threads=2, access_log=False)
    url = f"http://127.0.0.1:{port}"
    try:
        cli.wait_ready(url, process, timeout=150)
    except Exception:
        cli.stop(process)
        pytest.fail(f"bentoml serve did not start:\n{log.read_text()[-3000:]}")
    yield url
    cli.stop(process)
    assert process.poll() is not None
