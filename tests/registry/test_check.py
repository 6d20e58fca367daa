"""`demand models check`: every disagreement between the aliases, the stage records and
the journal is reported, and the exit code says whether there was one.

Each case plants one disagreement with plain MLflow writes into a registry that real
moves left clean (a SQLite MLflow under the session's tmp dir): what a crash, an older
`demand`, or a hand edit in the MLflow UI can leave.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from cli.main import main
from registry import audit, lifecycle, state
from registry.gates import Stage
from tests.registry.helpers import GOOD, fresh

# a registry of trained versions per test
pytestmark = pytest.mark.slow


def _clean(base, name: str):
    """v1 in production, v2 in staging, v3 a candidate: what real moves leave."""
    settings, client = fresh(base, name, sources=(GOOD, GOOD, GOOD))
    lifecycle.promote(settings, "1", Stage.production, force=True, reason="set-up")
    lifecycle.promote(settings, "2", Stage.staging, force=True, reason="set-up")
    return settings, client


def _check(settings, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setenv("DEMAND_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("DEMAND_MODEL_NAME", settings.model_name)
    capsys.readouterr()
    code = main(["models", "check"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_clean_registry_checks_clean(base, constant_scores, monkeypatch, capsys):
    settings, _ = _clean(base, "check_clean")
    code, out, err = _check(settings, monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert "consistent" in out and "3 versions" in out


def _double_alias(settings, client):
    # what the recovery of a promotion that crashed before deleting @staging used to leave
    lifecycle.promote(settings, "2", Stage.production, force=True, reason="v2 is better")
    client.set_registered_model_alias(settings.model_name, "staging", "2")
    return ["v2 holds both @staging and @production"]


def _tag(settings, client):
    client.set_model_version_tag(settings.model_name, "2", state.STAGE_TAG, "candidate")
    return ["v2: stage staging but tag demand.stage=candidate"]


def _legacy(settings, client):
    client.transition_model_version_stage(settings.model_name, "1", "Archived")
    return ["v1: stage production but legacy stage Archived"]


def _alias_gone(settings, client):
    # @staging deleted by hand: v2's records still say staging
    client.delete_registered_model_alias(settings.model_name, "staging")
    return [
        "v2: stage candidate but legacy stage Staging",
        "v2: stage candidate but tag demand.stage=staging",
    ]


def _journal(settings, client):
    move = audit.new_move(settings, "3", Stage.candidate, Stage.staging, "crashed")
    entry = {"moves": [asdict(move)], "lineage": None}
    client.set_registered_model_tag(settings.model_name, state.JOURNAL_TAG, json.dumps(entry))
    return [f"a move of v3 to staging ({move.at} by tester) was interrupted"]


PLANTS = {
    "double alias": _double_alias,
    "stage tag": _tag,
    "legacy stage": _legacy,
    "alias deleted": _alias_gone,
    "journal": _journal,
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_each_disagreement_is_reported_and_exits_1(
    base, constant_scores, plant, monkeypatch, capsys
):
    settings, client = _clean(base, f"check_{plant.replace(' ', '_')}")
    expected = PLANTS[plant](settings, client)
    code, out, err = _check(settings, monkeypatch, capsys)
    assert code == 1
    for line in expected:
        assert line in out, out
    assert f"{len(expected)} disagreement" in err
    assert "Traceback" not in out + err


def test_every_disagreement_at_once_is_reported(base, constant_scores, monkeypatch, capsys):
    settings, client = _clean(base, "check_all")
    name = settings.model_name
    client.set_registered_model_alias(name, "staging", "1")  # v1 both; v2's records stale
    expected = [
        "v1 holds both @staging and @production",
        "v2: stage candidate but legacy stage Staging",
        "v2: stage candidate but tag demand.stage=staging",
        *_legacy(settings, client),
        *_journal(settings, client),
    ]
    code, out, err = _check(settings, monkeypatch, capsys)
    assert code == 1
    for line in expected:
        assert line in out, out
    assert "5 disagreements" in err
