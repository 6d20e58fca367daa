"""The container's fast parts: serving's requirements, the Bento's docker options, the
containerize command's refusals. The image itself is built and run by `make container-smoke`."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from demand.settings import REPO_ROOT
from deploy import bento, container, requirements

DEMAND = str(Path(sys.executable).with_name("demand"))
PACKAGES = sorted(p.parent.name for p in REPO_ROOT.glob("*/__init__.py"))
# the Feast repo's modules import each other by file name
FEATURE_REPO_MODULES = {p.stem for p in (REPO_ROOT / "feature_repo").glob("*.py")}
PROJECT_MODULES = {*PACKAGES, *FEATURE_REPO_MODULES}


def _listed() -> dict[str, str]:
    lines = requirements.OUTPUT.read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def test_serving_requirements_are_in_sync_with_the_lock():
    # fails after `make lock` until `make serving-requirements` runs
    assert requirements.OUTPUT.read_text() == requirements.render()
    locked = requirements.locked_versions()
    assert all(locked[name] == version for name, version in _listed().items())


def test_serving_requirements_carry_no_test_lint_or_training_tools():
    listed = set(_listed())
    assert not listed & {*requirements.EXCLUDED, *requirements.LEFT_OUT}
    assert {"pytest", "ruff", "mlflow", "scikit-learn"}.isdisjoint(listed)
    assert {"bentoml", "feast", "catboost", "mlflow-skinny", "redis", "psycopg"} <= listed
    assert len(listed) < len(requirements.locked_versions())


def _bento_sources() -> list[Path]:
    return sorted(
        path
        for pattern in bento.sources()
        if pattern.endswith(".py")
        for path in REPO_ROOT.glob(pattern)
    )


def test_the_image_carries_the_service_and_nothing_of_training_the_build_or_deploy():
    """The Bento's sources are what serving/service.py imports: no deploy tooling, training,
    feature build, synthetic retailer, registry moves, data import or composition root."""
    packages = {source.split("/")[0] for source in bento.sources()}
    assert {"serving", "demand", "feature_repo"} <= packages
    unwanted = {"deploy", "training", "features", "synthetic", "rawdata", "registry"}
    assert not packages & (unwanted | {"ops", "nightly", "cli", "benchmarks", "tests"})


def test_the_sources_follow_the_service_imports(tmp_path):
    """A module the service imports, even inside a function, is carried; one it stops
    importing is not: the list is computed, not kept by hand."""
    for package in ("serving", "demand", "training"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "serving" / "service.py").write_text(
        "from demand import settings\n\ndef f():\n    from demand.calendar import Grain\n"
    )
    for name in ("settings", "calendar", "contract"):
        (tmp_path / "demand" / f"{name}.py").write_text("")
    (tmp_path / "training" / "train.py").write_text("")
    carried = bento.sources(root=tmp_path)
    assert "demand/calendar.py" in carried and "demand/settings.py" in carried
    assert "demand/contract.py" not in carried and "training/train.py" not in carried


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_the_bento_sources_import_is_in_the_image():
    """A new import in the Bento's sources or feature_repo/ must reach
    deploy/requirements.txt (through ROOTS), or the image fails at start while the venv
    works; a project module they import must be one of the Bento's sources."""
    provided = metadata.packages_distributions()
    listed = set(_listed())
    missing = {}
    for path in _bento_sources():
        for module in _imported(path) - PROJECT_MODULES - set(sys.stdlib_module_names):
            if module == "__future__":
                continue
            dists = {requirements.canonicalize_name(d) for d in provided.get(module, [])}
            if not dists & listed:
                missing[f"{path.relative_to(REPO_ROOT)}: {module}"] = sorted(dists)
    assert not missing, f"imported but not in deploy/requirements.txt: {missing}"
    sources = set(_bento_sources())
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.split(".")[0] in PACKAGES:
                file = REPO_ROOT / f"{module.replace('.', '/')}.py"
                package = REPO_ROOT / module.replace(".", "/") / "__init__.py"
                assert file in sources or package in sources, f"{path.name} imports {module}"


SERVE_WITHOUT = """
import importlib.abc, json, sys

LEFT_OUT = {left_out!r}
NOT_IN_BENTO = {not_in_bento!r}  # the project's modules the Bento does not carry

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in LEFT_OUT or any(
            name == m or name.startswith(m + ".") for m in NOT_IN_BENTO
        ):
            raise ImportError(f"{{name}} is left out of the image")

sys.meta_path.insert(0, Refuse())
from starlette.testclient import TestClient
from serving.service import DemandForecast

items = {items!r}
with TestClient(DemandForecast.to_asgi(), raise_server_exceptions=True) as http:
    ready = http.get("/readyz").status_code
    meta = http.get("/metadata").status_code
    answer = http.post("/forecast", json={{"items": items}})
print(json.dumps({{"ready": ready, "metadata": meta, "status": answer.status_code,
                  "forecasts": answer.json()["forecasts"]}}))
"""


@pytest.mark.slow
def test_the_service_serves_without_the_packages_left_out(serving_env, known_keys):
    """What LEFT_OUT drops (declared by catboost and Feast), and the project's modules the
    Bento does not carry, are never imported to serve."""
    keys, origin = known_keys
    items = [
        {"store_id": s, "product_id": p, "date": str(origin.fromordinal(origin.toordinal() + 2))}
        for s, p in keys[:5]
    ]
    modules = {"plotly", "matplotlib", "graphviz", "mypy", "PIL", "fontTools", "kiwisolver"}
    assert set(requirements.LEFT_OUT) <= modules | {"contourpy"}
    # what Feast loads by name from a store's config must be in the Bento too (an offline
    # store type under features/ once stopped the container at start)
    carried = {
        p.relative_to(REPO_ROOT).with_suffix("").as_posix().replace("/", ".")
        for p in _bento_sources()
    }
    project = {
        p.relative_to(REPO_ROOT).with_suffix("").as_posix().replace("/", ".")
        for package in PACKAGES
        for p in (REPO_ROOT / package).rglob("*.py")
        if p.name != "__init__.py"
    }
    not_in_bento = sorted(project - carried)
    script = SERVE_WITHOUT.format(
        left_out=sorted(modules | {"contourpy"}), not_in_bento=not_in_bento, items=items
    )
    env = dict(
        os.environ,
        DEMAND_DATA_DIR=str(serving_env.data_dir),
        DEMAND_MLFLOW_TRACKING_URI=serving_env.tracking_uri,
        DEMAND_SERVE_RELOAD_SECONDS="0",
        BENTOML_HOME=str(serving_env.bentoml_home),
        # a host where training runs on Spark: serving still never loads the Spark store
        DEMAND_ENGINE="spark",
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert (answer["ready"], answer["metadata"], answer["status"]) == (200, 200, 200)
    assert [f["status"] for f in answer["forecasts"]] == ["ok"] * len(items)


def test_pip_index_carries_http_indexes_and_skips_local_ones():
    listed = "\n".join(
        [
            "global.extra-index-url='file:///opt/pypi/simple https://mirror.example/extra'",
            "global.index-url='https://ignored.example/simple'",
            "site.index-url='https://mirror.example/simple'",
            "global.trusted-host='mirror.example'",
            "global.find-links='/opt/wheels'",
            ":env:.cert='/etc/ssl/certs/ca-certificates.crt'",
        ]
    )
    index = container.pip_index(listed)
    assert index.index_url == "https://mirror.example/simple"
    assert index.extra_index_urls == ("https://mirror.example/extra",)
    assert index.trusted_hosts == ("mirror.example",)
    assert index.skipped == ("file:///opt/pypi/simple",)
    assert "index-url = https://mirror.example/simple" in index.pip_conf()
    assert 'index-url = "https://mirror.example/simple"' in index.uv_toml()
    # no index configured: pip's and uv's defaults (PyPI), nothing written
    assert container.pip_index("").uv_toml().strip() == ""


@pytest.mark.slow
def test_the_bento_carries_the_base_image_and_serving_requirements(serving_env):
    built = bento.build(
        serving_env,
        base_image="localhost/demand-base:bookworm",
        index=container.PipIndex("https://mirror.example/simple"),
    )
    try:
        _check_bento(serving_env, built)
    finally:  # the session's Bento store stays as other tests expect it (one Bento, one model)
        import bentoml

        bentoml.bentos.delete(built.bento)
        bentoml.models.delete(built.model)


def _check_bento(serving_env, built) -> None:
    (home,) = serving_env.bentoml_home.glob(
        f"bentos/{bento.BENTO_NAME}/{built.bento.split(':')[1]}"
    )
    info = yaml.safe_load((home / "bento.yaml").read_text())
    assert info["docker"]["base_image"] == "localhost/demand-base:bookworm"
    dockerfile = (home / "env" / "docker" / "Dockerfile").read_text()
    assert (
        dockerfile.splitlines()[0:1] != [] and "FROM localhost/demand-base:bookworm" in dockerfile
    )
    # BentoML's service user, not root; no compilers; no package cache left in a layer
    assert "\nUSER bentoml\n" in dockerfile
    assert "build-essential" not in dockerfile
    assert "UV_NO_CACHE=1" in dockerfile
    install = (home / "env" / "python" / "install.sh").read_text()
    assert "--no-deps" in install and "https://mirror.example/simple" in install
    packaged = (home / "env" / "python" / "requirements.txt").read_text()
    # BentoML appends its own pin (the same as the lock's)
    assert set(packaged.splitlines()) == set(requirements.OUTPUT.read_text().splitlines())
    assert (home / "src" / "feature_repo" / "feature_store.team.yaml").exists()


def _containerize(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DEMAND, "bento", "containerize", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.container  # `demand bento containerize` in a subprocess
def test_containerize_without_a_production_model_says_how_to_get_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMAND_")}
    done = _containerize({**env, "DEMAND_DATA_DIR": str(tmp_path)}, "--backend", "buildah")
    assert done.returncode == 1
    assert "no alias @production of model 'demand_forecast'" in done.stderr
    assert "demand train" in done.stderr and "--to production" in done.stderr
    assert "Traceback" not in done.stderr


def _model_env(serving_env, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMAND_")}
    return {
        **env,
        "DEMAND_DATA_DIR": str(serving_env.data_dir),
        "DEMAND_MLFLOW_TRACKING_URI": serving_env.tracking_uri,
        **more,
    }


@pytest.mark.container  # `demand bento containerize` in a subprocess
def test_containerize_without_the_engine_says_how_to_install_it(serving_env, tmp_path):
    # a PATH with Python's tools only: no buildah, podman or docker on it
    env = _model_env(serving_env, PATH=str(Path(sys.executable).parent))
    done = _containerize(env, "--backend", "buildah")
    assert done.returncode == 1
    assert "buildah is not installed" in done.stderr
    assert "make container-tools" in done.stderr
    done = _containerize(env, "--backend", "docker")
    assert done.returncode == 1
    assert "docker is not installed" in done.stderr and "--backend buildah" in done.stderr


@pytest.mark.container  # `demand bento containerize` in a subprocess
def test_containerize_refuses_an_unknown_backend(serving_env):
    done = _containerize(_model_env(serving_env), "--backend", "kaniko")
    assert done.returncode == 2  # a bad argument (docs/reference/cli.md, exit codes)
    assert "'kaniko' is not one of" in done.stderr and "buildah" in done.stderr


def test_engine_configuration_is_the_projects_own(monkeypatch):
    import tomllib

    conf = tomllib.loads(container.CONTAINERS_CONF.read_text())
    assert conf["containers"]["default_ulimits"] == []
    assert (conf["engine"]["runtime"], conf["engine"]["cgroup_manager"]) == ("runc", "cgroupfs")
    roots = set()
    for driver, path in container.STORAGE_CONFS.items():
        storage = tomllib.loads(path.read_text())["storage"]
        assert storage["driver"] == driver
        roots.add(storage["graphroot"])
    assert len(roots) == 2  # one storage root holds one driver's layers
    monkeypatch.setenv("DEMAND_CONTAINER_STORAGE_DRIVER", "vfs")
    container.storage_driver.cache_clear()
    try:
        env = container.engine_environ()
        assert env["CONTAINERS_STORAGE_CONF"] == str(container.STORAGE_CONFS["vfs"])
        assert env["CONTAINERS_CONF"] == str(container.CONTAINERS_CONF)
    finally:
        container.storage_driver.cache_clear()
