"""Fixtures of a served model (a trained model, a service), shared by serving and deploy tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


def service_variables(settings: Settings) -> dict[str, str]:
    """The variables a service constructed in this process reads (as `bentoml serve` would)."""
    return {
        "DEMAND_DATA_DIR": str(settings.data_dir),
        "DEMAND_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "DEMAND_SERVE_RELOAD_SECONDS": "0",
        "DEMAND_SERVE_MAX_ITEMS": str(settings.serve_max_items),
        "BENTOML_HOME": str(settings.bentoml_home),
    }


@contextlib.contextmanager
def service_environment(settings: Settings, **extra: str) -> Iterator[None]:
    """``settings``' service variables (and ``extra``) set for the block, then put back.

    Never for longer: a variable left set for the session points every later
    ``get_settings()`` at this model's registry (the shared-registry tests read it).
    """
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**service_variables(settings), **extra}.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def service_settings(serving_env) -> Settings:
    """The served model's settings, as the service in this process sees them."""
    return serving_env.model_copy(update={"serve_max_items": 50})


@pytest.fixture
def service_environ(service_settings):
    """:func:`service_settings`, with its service variables set for one test."""
    with service_environment(service_settings):
        yield service_settings


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
def service_http(service_settings):
    """The service over HTTP in this process: one app per process (to_asgi() registers
    BentoML's own request metrics, and a second registration of them fails)."""
    from starlette.testclient import TestClient

    from serving.service import DemandForecast

    with contextlib.ExitStack() as stack:
        with service_environment(service_settings):  # the service reads them as it starts
            http = stack.enter_context(
                TestClient(DemandForecast.to_asgi(), raise_server_exceptions=False)
            )
        yield http


@pytest.fixture
def client(service_http, service_environ):
    """:func:`service_http`, with the service variables set while the test talks to it."""
    return service_http


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
