"""Serving on the team profile: the same forecasts from Redis as from SQLite, and Redis outages.

Real servers: the shared PostgreSQL (registry) and Redis, plus a private
`redis-server` on a free port for the outage test (the shared one is never
stopped). Each test's Feast project and registry database are removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest

from cli import serve as cli
from cli.serve import free_port
from demand.featurestore import feast_environ, open_store
from demand.servers import ServerUnavailable, redis_ping
from features import publish
from serving import model_loader
from serving.service import DemandForecast, Item
from tests.parity import offline_rows
from tests.servers import REDIS, require_program, team_feast_project

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def _environ(settings) -> dict[str, str]:
    """The DEMAND_* variables a service started for ``settings`` reads."""
    return {
        "DEMAND_PROFILE": settings.profile.value,
        **feast_environ(settings),
        "DEMAND_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "DEMAND_SERVE_RELOAD_SECONDS": "0",
        "BENTOML_HOME": str(settings.bentoml_home),
    }


@pytest.fixture(scope="module")
def team_serving(serving_env):
    """The serving data and model, with the features in the shared Redis."""
    with team_feast_project(serving_env) as team:
        yield team


def test_served_forecast_on_redis_equals_sqlite_and_the_offline_row(
    serving_env, team_serving, known_keys, monkeypatch
):
    keys, origin = known_keys
    sample = keys[:12]
    horizons = [1 + i % 7 for i in range(len(sample))]
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=h))
        for (s, p), h in zip(sample, horizons, strict=True)
    ]
    served, stores = {}, {}
    for settings in (serving_env, team_serving):
        with monkeypatch.context() as patch:
            for name, value in _environ(settings).items():
                patch.setenv(name, value)
            service = DemandForecast.inner()  # as `bentoml serve` constructs it
            answer = service.forecast(items=items)
        stores[settings.profile.value] = service.loaded.lookup.where
        assert answer.model.version == "1"
        assert [f.status for f in answer.forecasts] == ["ok"] * len(items)
        served[settings.profile.value] = np.array([f.units for f in answer.forecasts])
    assert stores["team"] == f"redis online store at {REDIS}"
    assert stores["embedded"].startswith("sqlite online store at ")
    np.testing.assert_allclose(served["team"], served["embedded"], rtol=0, atol=1e-9)

    # both are the model's prediction on the training row at the same origin
    offline = offline_rows(open_store(serving_env), serving_env, sample, origin, horizons)
    loaded = service.loaded
    mlflow.set_tracking_uri(serving_env.tracking_uri)
    model = mlflow.catboost.load_model(f"models:/{loaded.name}/{loaded.version}")
    expected = loaded.contract.predict(model, offline)
    np.testing.assert_allclose(served["embedded"], expected, rtol=1e-9, atol=1e-9)


class PrivateRedis:
    """A `redis-server` of this test's own on a free port; it keeps nothing on disk."""

    def __init__(self, binary: str, directory) -> None:
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                redis_ping(self.url)
                return
            except ServerUnavailable:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self) -> None:
        """Stop it the hard way, as a crash or a lost host would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    binary = require_program("redis-server", "install Redis (Debian: apt-get install redis-server)")
    server = PrivateRedis(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _wait_live(url: str, process, timeout: float = 150) -> None:
    """Until ``url``/livez answers: the process serves HTTP, ready or not."""
    deadline = time.monotonic() + timeout
    while _status_or_none(f"{url}/livez") != 200:
        assert process.poll() is None, f"the service exited with code {process.returncode}"
        assert time.monotonic() < deadline, f"{url} not live after {timeout:.0f}s"
        time.sleep(0.3)


def _status_or_none(url: str) -> int | None:
    try:
        return _status(url)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def test_redis_down_is_503_and_serving_resumes_when_it_is_back(
    serving_env, private_redis, known_keys, monkeypatch, tmp_path
):
    """A real `bentoml serve` on a private Redis: killed, then back, with no service restart;
    one started while it is down waits, not ready, instead of exiting."""
    keys, origin = known_keys
    days = [str(origin + dt.timedelta(days=1 + i)) for i in range(3)]
    items = zip(keys[:3], days, strict=True)
    body = {"items": [{"store_id": s, "product_id": p, "date": d} for (s, p), d in items]}
    port, late_port, late = free_port(), free_port(), None
    url, log = f"http://127.0.0.1:{port}", tmp_path / "bentoml.log"
    with (
        team_feast_project(serving_env, redis_url=private_redis.url) as team,
        monkeypatch.context() as patch,
    ):
        for name, value in _environ(team).items():
            patch.setenv(name, value)  # what the `bentoml serve` process reads
        process = cli.start_server(team, port, log=log, threads=2, access_log=False)
        try:
            cli.wait_ready(url, process, timeout=150)
            status, before = cli.post_json(f"{url}/forecast", body)
            assert status == 200, log.read_text()[-3000:]

            private_redis.kill()
            started = time.monotonic()
            status, down = cli.post_json(f"{url}/forecast", body)
            assert status == 503
            assert f"redis online store at {private_redis.url}" in down["error"]
            assert _status(f"{url}/readyz") == 503
            assert time.monotonic() - started < 5, "a down Redis must be a quick 503"
            assert _status(f"{url}/livez") == 200
            # a service starting now refuses, saying where the store is and what to run
            with pytest.raises(
                model_loader.ServingError,
                match=rf"cannot reach the redis online store at {private_redis.url}.*team-up",
            ):
                model_loader.load(team)

            # ... but a *service* starting now stays up, not ready, saying why in its log
            # (a container must not restart in a loop), and serves once the store is back
            late_url, late_log = f"http://127.0.0.1:{late_port}", tmp_path / "late.log"
            late = cli.start_server(team, late_port, log=late_log, threads=2, access_log=False)
            _wait_live(late_url, late)
            assert _status(f"{late_url}/readyz") == 503
            status, refused = cli.post_json(f"{late_url}/forecast", body)
            assert status == 503
            assert refused["error"].startswith("not ready: ")
            assert f"redis online store at {private_redis.url}" in refused["error"]
            assert _status(f"{late_url}/metadata") == 503
            assert f"not ready: model {before['model']['name']}" in late_log.read_text()

            private_redis.start()  # the same port; it kept nothing, so load it again
            publish.materialize(team)
            assert _status(f"{url}/readyz") == 200
            status, after = cli.post_json(f"{url}/forecast", body)
            assert (status, after) == (200, before)
            assert process.poll() is None  # the same service process throughout
            cli.wait_ready(late_url, late, timeout=30)  # its retry found the store
            assert cli.post_json(f"{late_url}/forecast", body) == (200, before)
        finally:
            cli.stop(process)
            if late is not None:
                cli.stop(late)
