"""The error contract: a bad argument or setting exits 2 and names itself; a bug is not one.

In-process through Typer's CliRunner. Each bad argument is refused by the parser (or
right after it), before any data is read, so the commands run on an empty data dir.
"""

from __future__ import annotations

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from cli.main import app
from demand.console import friendly
from demand.settings import Settings

runner = CliRunner()


def _text(output: str) -> str:
    """Typer's error panel without its frame and line wrapping: the words in order."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


@pytest.fixture
def env(tmp_path, monkeypatch, clean_demand_env):
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("DEMAND_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


BAD_ARGUMENTS = [
    (["import", ".", "--grain", "month"], "--grain", "'month' is not one of 'day', 'week'"),
    (["import", ".", "--week-start", "funday"], "--week-start", "'sunday'"),
    (["import", ".", "--delimiter", ";;"], "--delimiter", "one character"),
    (["import", ".", "--decimal", ";"], "--decimal", "'.', ','"),
    (["import", ".", "--decimal", ","], "--decimal", "also the field separator"),
    (["import", ".", "--map", "qty"], "--map", "expected THEIR_NAME=OUR_NAME"),
    (["online", "--key", "S000-P0300"], "--key", "expected STORE_ID:PRODUCT_ID"),
    (["online", "--target-date", "2024-13-01"], "--target-date", "%Y-%m-%d"),
    (["train", "--device", "tpu"], "--device", "'auto', 'cpu', 'gpu'"),
    (["serve", "--version", "latest"], "--version", "registry version number"),
    (["serve", "--port", "0"], "--port", "greater than or equal to 1"),
    (["bento", "containerize", "--backend", "doker"], "--backend", "'buildah'"),
]


@pytest.mark.parametrize(("argv", "option", "reason"), BAD_ARGUMENTS, ids=lambda v: str(v))
def test_a_bad_argument_exits_2_naming_the_option(env, argv, option, reason):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert option in _text(result.stderr) and reason in _text(result.stderr)
    assert "Traceback" not in result.output


def test_a_valid_week_start_is_not_case_sensitive(env):
    # refused later for the missing folder (exit 1), not for SUNDAY
    result = runner.invoke(app, ["import", "missing", "--week-start", "SUNDAY", "--delimiter", ";"])
    assert result.exit_code == 1 and "missing is not a folder" in result.stderr


BAD_SETTINGS = [
    ("DEMAND_HORIZON", "20", "less than or equal to 9"),
    ("DEMAND_SPARK_CONF", "{bad", "not JSON"),
    ("DEMAND_LOSS", "Tweedy", "expected RMSE, Poisson or Tweedie"),
    ("DEMAND_DUCKDB_MEMORY_LIMIT", "lots", "expected a size such as 8GB"),
    ("DEMAND_SERVE_VERSION", "latest", "registry version number"),
    ("DEMAND_REDIS_URL", "localhost", "expected host:port"),
    ("DEMAND_MLFLOW_TRACKING_URI", "localhost:5000", "write http://localhost:5000"),
    ("DEMAND_REGISTRY_LOCK_URL", "sqlite:///locks.db", "expected a PostgreSQL URL"),
    ("DEMAND_PROFILE", "teams", "'embedded' or 'team'"),
]


@pytest.mark.parametrize(("variable", "value", "reason"), BAD_SETTINGS, ids=lambda v: str(v))
def test_a_bad_setting_exits_2_naming_the_variable(env, monkeypatch, variable, value, reason):
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2, result.output
    line = f"error: setting {variable}={value} (from the environment): "
    assert line in result.stderr and reason in result.stderr
    assert "Traceback" not in result.output and "internal" not in result.stderr


def test_a_bad_setting_in_dotenv_says_so_and_hides_the_password(env):
    (env / ".env").write_text("DEMAND_FORECAST_DB_URL=mysql://bob:hunter2@db/forecasts\n")
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "DEMAND_FORECAST_DB_URL=mysql://bob:***@db/forecasts (from .env)" in result.stderr
    assert "hunter2" not in result.output


def test_a_password_in_an_unparsable_url_is_not_shown(env, monkeypatch):
    monkeypatch.setenv("DEMAND_FEAST_REGISTRY_URL", "postgresql://bob:hunter2@db:port/feast")
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2 and "DEMAND_FEAST_REGISTRY_URL" in result.stderr
    assert "hunter2" not in result.output


class _Order(BaseModel):
    quantity: int


def test_a_validation_error_that_is_not_a_setting_is_not_reported_as_one(capsys):
    # a library's own pydantic model (Feast's RepoConfig, BentoML's) failing is a bug, exit 1
    @friendly
    def command():
        _Order.model_validate({"quantity": "many"})

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == 1
    err = capsys.readouterr().err
    assert "ValidationError" in err and "setting" not in err and "DEMAND_QUANTITY" not in err


def test_an_unknown_variable_is_warned_of_with_the_closest_setting(env, monkeypatch):
    monkeypatch.setenv("DEMAND_HORIZN", "12")
    (env / ".env").write_text("DEMAND_SED=3\nDEMAND_ZZZZZZZZZZ=1\n")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "unknown setting DEMAND_HORIZN; did you mean DEMAND_HORIZON?" in result.stderr
    assert "unknown setting DEMAND_SED in .env; did you mean DEMAND_SEED?" in result.stderr
    assert "unknown setting DEMAND_ZZZZZZZZZZ in .env\n" in result.stderr  # nothing close


def test_config_prints_values_with_sources_and_hides_passwords(env, monkeypatch):
    monkeypatch.setenv("DEMAND_FEAST_REGISTRY_URL", "postgresql+psycopg://bob:hunter2@db/feast")
    monkeypatch.setenv("DEMAND_REDIS_URL", "redis:6379,password=swordfish,ssl=true")
    (env / ".env").write_text("DEMAND_HORIZON=5\nDEMAND_SEED=99\n")
    monkeypatch.setenv("DEMAND_SEED", "3")  # the environment wins over .env
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert lines["DEMAND_FEAST_REGISTRY_URL"] == [
        "postgresql+psycopg://bob:***@db/feast",
        "(environment)",
    ]
    assert lines["DEMAND_REDIS_URL"] == ["redis:6379,password=***,ssl=true", "(environment)"]
    assert lines["DEMAND_HORIZON"] == ["5", "(.env)"]
    assert lines["DEMAND_SEED"] == ["3", "(environment)"]
    assert lines["DEMAND_DEPTH"] == ["6", "(default)"]
    assert "hunter2" not in result.output and "swordfish" not in result.output
    assert list(lines) == [f"DEMAND_{name.upper()}" for name in Settings.model_fields]


def test_config_markdown_is_the_reference_table(env):
    from demand.configuration import reference_table

    result = runner.invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0
    assert result.stdout == reference_table()
