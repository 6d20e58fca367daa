"""The registry lifecycle end to end: real Feast, real CatBoost, a temporary SQLite MLflow.

Two tiny models are trained once (``conftest.base``): a good one (100 trees) and a
bad one (2 trees, worse than both baselines). Each test copies them into a
registered model of its own, so tests do not depend on each other's moves.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from mlflow import MlflowClient

from registry import audit, cli, lifecycle, state, transfer
from registry.gates import INTERVAL_WQL_CHAMPION, NO_WORSE, GateResult, Stage
from registry.state import RegistryError
from tests.registry.helpers import BAD, GOOD, assert_consistent, fresh, race, snapshot
from tests.servers import require_servers


def test_lifecycle_end_to_end(base, gated):
    settings, client = fresh(base, "e2e")
    name = settings.model_name

    lifecycle.promote(settings, GOOD, Stage.staging)
    assert assert_consistent(client, name) == {GOOD: Stage.staging, BAD: Stage.candidate}
    assert client.get_model_version_by_alias(name, "staging").version == int(GOOD)

    outcome = lifecycle.promote(settings, GOOD, Stage.production)
    assert outcome.gates.passed
    assert "no production version yet" in outcome.gates.checks[-1].detail
    assert assert_consistent(client, name) == {GOOD: Stage.production, BAD: Stage.candidate}
    assert "staging" not in client.get_registered_model(name).aliases
    assert state.lineage(client, name) == [GOOD]

    # the bad version: refused for staging, with the numbers, and nothing changes
    before = snapshot(client, name)
    with pytest.raises(lifecycle.GateRefused) as refused:
        lifecycle.promote(settings, BAD, Stage.staging)
    message = str(refused.value)
    bad_backtest = state.run_facts(client, client.get_model_version(name, BAD)).backtest
    assert f"WAPE {bad_backtest.wape:.4f} is not below" in message
    assert f"moving_average_28d {bad_backtest.baselines['moving_average_28d']:.4f}" in message
    assert snapshot(client, name) == before

    # and for production: worse than the champion re-scored on the same rows
    with pytest.raises(lifecycle.GateRefused) as refused:
        lifecycle.promote(settings, BAD, Stage.production)
    checks = {check.name: check for check in refused.value.result.checks}
    champion_check = checks[NO_WORSE]
    assert not champion_check.passed
    # its quantiles too, by the same paired rule on the same rows
    assert not checks[INTERVAL_WQL_CHAMPION].passed
    assert "backtest rows" in checks[INTERVAL_WQL_CHAMPION].detail
    assert "(production v1)" in champion_check.detail
    assert "upper end > margin 0.02" in champion_check.detail
    assert "backtest rows" in champion_check.detail
    # clearly worse: the whole interval is above the margin
    assert champion_check.evidence["low"] > 0.02
    assert snapshot(client, name) == before

    with pytest.raises(RegistryError, match="--force needs --reason"):
        lifecycle.promote(settings, BAD, Stage.production, force=True)
    assert snapshot(client, name) == before

    # forced, with a reason: recorded with who, why and the failed gates
    lifecycle.promote(settings, BAD, Stage.production, force=True, reason="hotfix INC-42")
    assert assert_consistent(client, name) == {GOOD: Stage.archived, BAD: Stage.production}
    tags = client.get_model_version(name, BAD).tags
    assert tags["demand.moved.forced"] == "true"
    assert tags["demand.moved.reason"] == "hotfix INC-42"
    assert tags["demand.moved.by"] == "tester"
    assert (tags["demand.moved.from"], tags["demand.moved.to"]) == ("candidate", "production")
    assert not GateResult.from_json(tags["demand.moved.gates"]).passed
    archived = audit.history(client.get_model_version(name, GOOD).tags)
    assert [(m.from_stage, m.to_stage) for m in archived] == [
        ("candidate", "staging"),
        ("staging", "production"),
        ("production", "archived"),
    ]
    assert state.lineage(client, name) == [GOOD, BAD]

    # archived versions are not promoted again; production is not archived by hand
    before = snapshot(client, name)
    with pytest.raises(RegistryError, match="archived"):
        lifecycle.promote(settings, GOOD, Stage.staging)
    with pytest.raises(RegistryError, match="in production"):
        lifecycle.archive(settings, BAD)
    with pytest.raises(RegistryError, match="needs --reason"):
        lifecycle.rollback(settings, " ")
    assert snapshot(client, name) == before

    lifecycle.rollback(settings, "forecasts too low in region 3")
    assert assert_consistent(client, name) == {GOOD: Stage.production, BAD: Stage.archived}
    assert client.get_model_version_by_alias(name, "production").version == int(GOOD)
    restored = audit.history(client.get_model_version(name, GOOD).tags)[-1]
    assert (restored.from_stage, restored.to_stage) == ("archived", "production")
    assert "forecasts too low in region 3" in restored.reason
    assert restored.gates == ""  # rollback skips the gates
    assert state.lineage(client, name) == [GOOD]

    with pytest.raises(RegistryError, match="nothing to roll back to"):
        lifecycle.rollback(settings, "again")
    assert_consistent(client, name)


def test_staging_has_one_seat_and_equal_models_pass_with_no_margin(base, gated):
    """Two copies of one model: the re-scored WAPEs are equal, and 'no worse' lets it
    through even with a margin of 0 (the interval of a zero difference is [0, 0])."""
    settings, client = fresh(base, "seats", sources=(GOOD, GOOD))
    name = settings.model_name
    lifecycle.promote(settings, "1", Stage.staging)
    lifecycle.promote(settings, "2", Stage.staging)
    assert assert_consistent(client, name) == {"1": Stage.candidate, "2": Stage.staging}

    lifecycle.promote(settings, "1", Stage.production)
    no_margin = settings.model_copy(update={"gate_margin": 0.0})
    outcome = lifecycle.promote(no_margin, "2", Stage.production)
    evidence = outcome.gates.checks[-1].evidence
    # same model, same rows, same score
    assert evidence["challenger"] == pytest.approx(evidence["champion"])
    assert (evidence["low"], evidence["high"]) == (0.0, 0.0)
    assert "[+0.0000, +0.0000], upper end ≤ margin 0 " in outcome.gates.checks[-1].detail
    # the interval is in the audit trail of the move, and in the reason it records
    (move,) = [m for m in outcome.moves if m.version == "2"]
    assert move.gate_result.checks[-1].evidence == evidence
    recorded = audit.history(client.get_model_version(name, "2").tags)[-1]
    assert recorded.gate_result.checks[-1].evidence == evidence
    assert "90% interval [+0.0000, +0.0000]" in recorded.reason
    assert assert_consistent(client, name) == {"1": Stage.archived, "2": Stage.production}

    with pytest.raises(RegistryError, match="already archived"):
        lifecycle.archive(settings, "1")


def test_archive_a_candidate(base):
    settings, client = fresh(base, "shelf", sources=(GOOD,))
    lifecycle.promote(settings, "1", Stage.staging)
    lifecycle.archive(settings, "1", reason="superseded")
    assert assert_consistent(client, settings.model_name) == {"1": Stage.archived}
    assert "staging" not in client.get_registered_model(settings.model_name).aliases
    assert client.get_model_version(settings.model_name, "1").tags["demand.moved.reason"] == (
        "superseded"
    )


def test_promote_if_passing_is_what_the_demo_does(base, gated):
    settings, client = fresh(base, "demo")
    outcome = lifecycle.promote_if_passing(settings, GOOD)
    assert isinstance(outcome, lifecycle.Outcome)
    stopped = lifecycle.promote_if_passing(settings, BAD)
    assert isinstance(stopped, GateResult) and not stopped.passed
    assert assert_consistent(client, settings.model_name) == {
        GOOD: Stage.production,
        BAD: Stage.candidate,
    }


@pytest.fixture
def cli_env(base, monkeypatch):
    def use(name: str, uri: str | None = None) -> None:
        monkeypatch.setenv("DEMAND_DATA_DIR", str(base.data_dir))
        monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", uri or base.tracking_uri)
        monkeypatch.setenv("DEMAND_MODEL_NAME", name)
        monkeypatch.setenv("DEMAND_USER", "cli-user")

    return use


def test_bad_input_fails_clearly_and_changes_nothing(base, cli_env, capsys):
    settings, client = fresh(base, "bad_input", sources=(GOOD,))
    name = settings.model_name
    run_id = client.get_model_version(name, "1").run_id
    source = client.get_model_version_download_uri(name, "1")
    client.create_model_version(name, source, run_id=run_id)  # v2: no contract tags
    lifecycle.promote(settings, "1", Stage.production)
    cli_env(name)
    before = snapshot(client, name)
    cases = [
        (["promote", "7", "--to", "staging"], "has no version 7 (versions: 1, 2)"),
        (["promote", "seven", "--to", "staging"], "expected a version number"),
        (["promote", "2", "--to", "staging"], "has no feature contract"),
        (["promote", "2", "--to", "production", "--force", "--reason", "x"], "no feature contract"),
        (["promote", "1", "--to", "production"], "already in production"),
        (["show", "9"], "has no version 9"),
        (["rollback", "--reason", "r"], "nothing to roll back to"),
    ]
    for argv, expected in cases:
        assert cli.main(argv) == 1, argv
        captured = capsys.readouterr()
        assert expected in captured.err, (argv, captured.err)
        assert "Traceback" not in captured.err
        assert snapshot(client, name) == before

    cli_env("no_such_model")
    assert cli.main(["list"]) == 1
    assert "no registered model 'no_such_model'" in capsys.readouterr().err


def test_unreachable_registry_fails_fast(base, cli_env, capsys):
    cli_env("demand_forecast", uri="http://127.0.0.1:9")
    started = time.perf_counter()
    assert cli.main(["promote", "1", "--to", "staging"]) == 1
    assert time.perf_counter() - started < 20
    assert "does not answer" in capsys.readouterr().err


def test_list_and_show(base, gated, cli_env, capsys):
    settings, _client = fresh(base, "shown")
    lifecycle.promote(settings, GOOD, Stage.production, reason="first release")
    cli_env(settings.model_name)
    assert cli.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "production" in listed and "candidate" in listed  # the stage column never wraps
    assert cli.main(["show", GOOD]) == 0
    shown = capsys.readouterr().out
    assert "candidate → production" in shown and "first release" in shown
    assert "✓ no worse than production" in shown


@pytest.mark.slow  # two processes racing
def test_two_processes_promoting_at_once_leave_one_production_version(base):
    settings, _client = fresh(base, "race")
    race(base, (base.tracking_uri,) * 2, settings.model_name, (GOOD, BAD))


@pytest.fixture
def postgres_uri():
    """A uniquely named PostgreSQL database at 127.0.0.1:5432, dropped afterwards.

    Without the server it skips on a developer's machine and fails under ``CI=true``,
    as every server test does (``tests.servers``)."""
    import psycopg

    require_servers(redis=False, postgres=True)
    connection = psycopg.connect(
        "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
    )
    database = f"demand_registry_{uuid.uuid4().hex[:12]}"
    connection.execute(f'CREATE DATABASE "{database}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    finally:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        connection.close()


@pytest.mark.slow  # two processes racing
@pytest.mark.postgres
def test_two_processes_promoting_at_once_on_postgresql(base, postgres_uri):
    copies = [transfer.copy_version(base, v, "race_pg", postgres_uri) for v in (GOOD, BAD)]
    assert [version for _, version in copies] == ["1", "2"]
    race(base, (postgres_uri,) * 2, "race_pg", ("1", "2"))


def test_copy_into_another_tracking_server_keeps_tags_and_passes_its_gates(
    base, gated, tmp_path, cli_env, capsys
):
    other = f"sqlite:///{tmp_path}/other.db"
    cli_env(base.model_name)
    code = cli.main(
        [
            "promote",
            GOOD,
            "--to",
            "staging",
            "--to-model",
            "prod_forecast",
            "--to-tracking-uri",
            other,
        ]
    )
    assert code == 0, capsys.readouterr()
    client = MlflowClient(other, other)
    copy = client.get_model_version("prod_forecast", "1")
    source = MlflowClient(base.tracking_uri, base.tracking_uri).get_model_version(
        base.model_name, GOOD
    )
    contract_tags = {k: v for k, v in source.tags.items() if k.startswith("demand.contract.")}
    assert contract_tags and all(copy.tags[k] == v for k, v in contract_tags.items())
    assert copy.tags[transfer.COPIED_FROM].endswith(f"models:/{base.model_name}/{GOOD}")
    assert assert_consistent(client, "prod_forecast") == {"1": Stage.staging}
    moves = audit.history(copy.tags)
    assert [m.to_stage for m in moves] == ["candidate", "staging"]
    assert json.loads(moves[-1].gates)["target"] == "staging"
    # the source registry is untouched
    assert "demand.moved.to" not in source.tags


def test_copy_into_another_model_on_the_same_server(base):
    target, version = transfer.copy_version(base, GOOD, "regional_forecast", None)
    assert target.model_name == "regional_forecast"
    lifecycle.promote(target, version, Stage.production)
    client = MlflowClient(base.tracking_uri, base.tracking_uri)
    assert assert_consistent(client, "regional_forecast") == {version: Stage.production}
