"""Settings are checked when read, against the components that will use them; the docs'
settings reference (docs/reference/settings.md) is the one generated from them."""

from __future__ import annotations

import warnings

import duckdb
import pytest

from demand.configuration import BEGIN, END, reference_table
from demand.console import Advice
from demand.settings import REPO_ROOT, SettingError, Settings, get_settings


@pytest.fixture
def env(tmp_path, monkeypatch, clean_demand_env):
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    return tmp_path


def _duckdb_accepts(limit: str) -> bool:
    try:
        with duckdb.connect(config={"memory_limit": limit}) as connection:
            connection.execute("select sum(i) from range(1000) t(i)").fetchone()
    except duckdb.Error:
        return False
    return True


@pytest.mark.parametrize(
    "limit", ["8GB", "8 GB", "8gb", "1.5GB", "512MiB", "2G", "4 gigabytes", ".5GB", "80%", "50.5 %"]
)
def test_a_memory_limit_the_setting_takes_is_one_duckdb_runs_with(env, limit):
    assert get_settings(duckdb_memory_limit=limit).duckdb_config["memory_limit"] == limit
    assert _duckdb_accepts(limit)


@pytest.mark.parametrize(
    ("limit", "duckdb_too"),
    [
        ("lots", True),  # DuckDB: "Memory must have a number"
        ("8XB", True),
        ("1.5.GB", True),
        ("120%", True),
        ("1000", True),  # no unit
        ("0GB", True),  # DuckDB takes it, then cannot run a query
        ("0%", True),
        ("-1", False),  # DuckDB reads it as no limit: not what a limit setting means
        ("none", False),
    ],
)
def test_a_memory_limit_the_setting_refuses(env, limit, duckdb_too):
    with pytest.raises(SettingError, match="DEMAND_DUCKDB_MEMORY_LIMIT"):
        get_settings(duckdb_memory_limit=limit)
    assert _duckdb_accepts(limit) is not duckdb_too


@pytest.mark.parametrize(
    "loss", ["RMSE", "Poisson", "Tweedie:variance_power=1.5", "Tweedie:variance_power=1.01"]
)
def test_a_loss_the_setting_takes_is_one_catboost_trains_with(env, loss):
    from catboost import CatBoostRegressor

    settings = get_settings(loss=loss)
    model = CatBoostRegressor(loss_function=settings.loss, iterations=2, verbose=False)
    model.fit([[0.0], [1.0], [2.0], [3.0]], [0.0, 1.0, 2.0, 3.0])
    assert model.tree_count_ == 2


@pytest.mark.parametrize(
    "loss", ["Tweedy", "rmse", "Tweedie", "Tweedie:variance_power=2", "Poisson:x=1", "MAE"]
)
def test_a_loss_the_setting_refuses(env, loss):
    with pytest.raises(SettingError, match="DEMAND_LOSS"):
        get_settings(loss=loss)


def test_the_error_names_the_source_of_each_bad_value(env, monkeypatch):
    monkeypatch.setenv("DEMAND_DEPTH", "99")
    (env / ".env").write_text("DEMAND_HORIZON=0\n")
    with pytest.raises(SettingError) as raised:
        get_settings(seed="x")
    lines = str(raised.value).splitlines()
    assert len(lines) == 3
    assert any(
        line.startswith("setting DEMAND_DEPTH=99 (from the environment): ") for line in lines
    )
    assert any(line.startswith("setting DEMAND_HORIZON=0 (from .env): ") for line in lines)
    assert any(line.startswith("setting DEMAND_SEED=x (given as an argument): ") for line in lines)
    assert raised.value.exit_code == 2


def test_settings_remember_where_each_value_came_from(env, monkeypatch):
    monkeypatch.setenv("DEMAND_HORIZON", "5")
    (env / ".env").write_text("DEMAND_HORIZON=3\nDEMAND_DEPTH=4\n")
    settings = get_settings(seed=3)
    assert (settings.horizon, settings.depth, settings.seed) == (5, 4, 3)
    sources = settings.sources
    assert sources["horizon"] == "environment" and sources["depth"] == ".env"
    assert sources["seed"] == "argument" and sources["loss"] == "default"
    assert settings.model_copy(update={"seed": 1}).sources == sources


def test_an_unknown_variable_names_the_closest_setting(env, monkeypatch):
    monkeypatch.setenv("DEMAND_HORIZN", "12")
    monkeypatch.setenv("DEMAND_DEBUG", "1")  # the console's, not a setting: no warning
    with pytest.warns(Advice) as warned:
        settings = get_settings()
    assert [str(w.message) for w in warned] == [
        "unknown setting DEMAND_HORIZN; did you mean DEMAND_HORIZON?"
    ]
    assert settings.horizon == 7  # ignored, as before; now said


def test_known_variables_raise_no_warning(env, monkeypatch):
    monkeypatch.setenv("DEMAND_HORIZON", "3")
    monkeypatch.setenv("demand_seed", "4")  # names are not case-sensitive
    with warnings.catch_warnings():
        warnings.simplefilter("error", Advice)
        assert get_settings().seed == 4


def test_every_setting_says_what_it_is():
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_the_docs_settings_reference_is_the_generated_one():
    page = (REPO_ROOT / "docs" / "reference" / "settings.md").read_text()
    section = page[page.index(BEGIN) + len(BEGIN) : page.index(END)]
    assert section == "\n" + reference_table(), "run `make docs-config` (python -m cli.reference)"


def test_the_reference_has_every_setting_with_its_type_and_default():
    rows = {row.split(" | ")[0].strip("| `"): row for row in reference_table().splitlines()[2:]}
    assert list(rows) == [f"DEMAND_{name.upper()}" for name in Settings.model_fields]
    assert "| `DEMAND_HORIZON` | `horizon` | integer ≥ 1, ≤ 9 | `7` |" in rows["DEMAND_HORIZON"]
    assert "| `embedded` \\| `team` | `embedded` |" in rows["DEMAND_PROFILE"]
    assert "half the machine's memory" in rows["DEMAND_DUCKDB_MEMORY_LIMIT"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEMAND_GATE_MARGIN", "-0.01"),
        ("DEMAND_GATE_LEVEL", "1"),
        ("DEMAND_GATE_LEVEL", "0"),
        ("DEMAND_GATE_DRAWS", "10"),
        ("DEMAND_GATE_MIN_UNSEEN_WEEKS", "0"),
        ("DEMAND_GATE_MIN_UNSEEN_KEY_SHARE", "1.5"),
    ],
)
def test_the_gates_settings_refuse_what_the_gate_cannot_use(env, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError, match=variable) as raised:
        get_settings()
    assert raised.value.exit_code == 2
