"""`POST /reload`'s 409s and the alias-poll thread, on real `bentoml serve` processes.

Every other serving fixture sets ``serve_reload_seconds=0`` (tests reload by hand).
Here a service polls its registered model's ``@production`` every second, and one
serving a pinned version has nothing to reload. Each test serves a registered model of
its own (a copy of the session's v1), so the session's registry is left alone.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from contextlib import contextmanager

import pytest
from mlflow import MlflowClient

from cli import serve as cli
from demand.contract import FeatureContract

# real `bentoml serve` processes, each started for its test
pytestmark = pytest.mark.slow


@contextmanager
def served(settings, tmp_path, **options):
    port = cli.free_port()
    log = tmp_path / f"serve-{port}.log"
    process = cli.start_server(settings, port, log=log, threads=2, access_log=False, **options)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            cli.wait_ready(url, process, timeout=150)
        except Exception:
            pytest.fail(f"bentoml serve did not start:\n{log.read_text()[-3000:]}")
        yield url, log
    finally:
        cli.stop(process)


def _model(serving_env):
    """A registered model of its own whose v1 copies the session's v1, aliased production."""
    registry = MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri)
    name = f"reload_{uuid.uuid4().hex[:8]}"
    registry.copy_model_version(f"models:/{serving_env.model_name}/1", name)
    registry.set_registered_model_alias(name, "production", "1")
    return registry, name


def _metadata(url: str) -> dict:
    import json

    with urllib.request.urlopen(f"{url}/metadata", timeout=10) as response:
        return json.loads(response.read())


def _reload(url: str) -> tuple[int, dict]:
    return cli.post_json(f"{url}/reload", {})


def test_the_poll_thread_follows_the_alias_and_keeps_serving_through_a_bad_version(
    serving_env, tmp_path
):
    registry, name = _model(serving_env)
    settings = serving_env.model_copy(update={"model_name": name, "serve_reload_seconds": 1.0})
    with served(settings, tmp_path) as (url, log):
        meta = _metadata(url)
        assert meta["model"]["version"] == "1"
        assert meta["reload"] == {"follows_alias": True, "poll_seconds": 1.0}

        v1 = registry.get_model_version(name, "1")
        v2 = registry.create_model_version(name, v1.source, run_id=v1.run_id, tags=v1.tags)
        registry.set_registered_model_alias(name, "production", v2.version)
        # no POST /reload: the poll thread sees the alias move (waited for, not timed)
        assert _wait_for_version(url, str(v2.version)), log.read_text()[-3000:]

        # the alias moves to a version this store cannot serve: POST /reload is a 409
        # naming why, and the poll thread keeps serving v2 (it fails each time it looks)
        contract = FeatureContract.from_tags(v1.tags)
        lacking = FeatureContract(
            **{
                **contract.__dict__,
                "features": [*contract.features, "units_lag_365"],
                "dtypes": {**contract.dtypes, "units_lag_365": "float"},
            }
        )
        v3 = registry.create_model_version(
            name, v1.source, run_id=v1.run_id, tags={**v1.tags, **lacking.to_tags()}
        )
        registry.set_registered_model_alias(name, "production", v3.version)
        status, answer = _reload(url)
        assert status == 409, answer
        assert "units_lag_365" in answer["error"]
        # several poll periods later: still v2, and still answering
        assert not _wait_for_version(url, str(v3.version), seconds=5)
        assert _metadata(url)["model"]["version"] == str(v2.version)
        status, _ = _reload(url)
        assert status == 409


def test_a_pinned_version_has_nothing_to_reload(serving_env, tmp_path):
    registry, name = _model(serving_env)
    settings = serving_env.model_copy(update={"model_name": name, "serve_reload_seconds": 1.0})
    with served(settings, tmp_path, version="1") as (url, _log):
        assert _metadata(url)["reload"]["follows_alias"] is False
        status, answer = _reload(url)
        assert status == 409
        assert answer == {
            "error": "alias: this service serves a pinned version; nothing to reload",
            "field": "alias",
        }
        # and it does not poll: the alias moves, the pinned version stays
        v1 = registry.get_model_version(name, "1")
        v2 = registry.create_model_version(name, v1.source, run_id=v1.run_id, tags=v1.tags)
        registry.set_registered_model_alias(name, "production", v2.version)
        assert not _wait_for_version(url, str(v2.version), seconds=5)


def _wait_for_version(url: str, version: str, seconds: float = 60) -> bool:
    """Whether the service serves ``version`` within ``seconds`` (a wait, not a timing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _metadata(url)["model"]["version"] == version:
            return True
        time.sleep(0.5)
    return False
