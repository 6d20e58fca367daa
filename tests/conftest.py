"""Shared fixtures: tiny seeded data, and a data directory with the feature pipeline run once."""

from __future__ import annotations

import os

import pytest

from demand.settings import Settings, get_settings
from features import pipeline
from synthetic import generator

# the serving fixtures (a trained model, a service): tests/serving and tests/deploy share them;
# the fuzzer fixture runs property-based tests fixed (make test) or freshly seeded (make fuzz)
pytest_plugins = ["tests.serving_fixtures", "tests.fuzzing"]

# the platform mutes its libraries' deprecations at run time; the tests keep pytest's
# filters (pyproject.toml), which make the pinned libraries' ones errors
os.environ["DEMAND_LIBRARY_WARNINGS"] = "keep"


def _demand_variables() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("DEMAND_")}


@pytest.fixture(scope="module", autouse=True)
def demand_variables_left_as_found(request):
    """A module that leaves a DEMAND_* variable changed fails, and the variables go back.

    Every later ``get_settings()`` of the session would read it: a leaked
    DEMAND_MLFLOW_TRACKING_URI once pointed the shared-registry tests at another
    module's SQLite registry. Session fixtures set variables only for a block.
    """
    before = _demand_variables()
    yield
    after = _demand_variables()
    if after == before:
        return
    for name in after.keys() - before.keys():
        del os.environ[name]
    os.environ.update(before)
    changed = sorted(name for name in {*before, *after} if before.get(name) != after.get(name))
    pytest.fail(f"{request.module.__name__} left DEMAND_* variables changed: {changed}")


@pytest.fixture(scope="session")
def tiny():
    """The tiny generated retailer (seconds to make)."""
    return generator.generate("tiny", seed=7)


@pytest.fixture(scope="session")
def feature_env(tmp_path_factory) -> Settings:
    """Settings over a data dir where generate → build → apply → materialize has run."""
    settings = get_settings(data_dir=tmp_path_factory.mktemp("data"), scale="tiny", seed=7)
    pipeline.run(settings, progress=lambda _: None)
    return settings


@pytest.fixture
def clean_demand_env(monkeypatch):
    """No DEMAND_* variables for this test: session fixtures (the in-process service) and
    ``open_store`` (Feast reads its yaml's ${DEMAND_…} from the environment) set some,
    and settings built from scratch must not pick them up."""
    import os

    for name in [n for n in os.environ if n.startswith("DEMAND_")]:
        monkeypatch.delenv(name)
