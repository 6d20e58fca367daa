"""The production gate on a small weekly retailer, with a real MLflow registry.

The shipped weekly example (4 stores × 12 products, two years of weeks) is imported,
built and trained three times, differing only in the backtest: v1 on its last 13 weeks
(the challenger), v2 on the last 4 and v3 on the last 2 (champions trained later, whose
backtest models saw the labels of the start of v1's window). v1 against v2 is compared
on the 4 weeks v2 never saw: 768 rows, which the fixed minimum of 1,000 rows refused
whatever the models; v1 against v3 has 2 such weeks, fewer than the 4 of the weekly grain.
"""

from __future__ import annotations

import mlflow
import pytest

from demand.settings import get_settings
from examples.generate import HERE as EXAMPLES_DIR
from features import pipeline, publish
from rawdata import importer
from registry import audit, cli, lifecycle
from registry.gates import NO_WORSE, Stage
from tests.registry.helpers import assert_consistent, fresh

pytestmark = pytest.mark.slow  # a weekly build and three fits (about a minute)

CHALLENGER, FOUR_WEEKS_LATER, TWO_WEEKS_LATER = "1", "2", "3"


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    root = tmp_path_factory.mktemp("weekly_gate")
    settings = get_settings(
        data_dir=root,
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        model_name="weekly",
        iterations=150,
        user="tester",
        serve_reload_seconds=0.0,
        # point forecasts: the gate's WAPE rule and the unseen minimum are what is tested here
        # (a champion trained later also has better quantiles: the wQL check refuses)
        quantiles="",
    )
    importer.run_import(EXAMPLES_DIR / "weekly", settings.raw_dir, progress=lambda _: None)
    pipeline.build_features(settings, progress=lambda _: None)
    publish.apply(settings)
    publish.materialize(settings)
    from training import train

    for weeks in (13, 4, 2):
        update = {"weekly_test": weeks}
        train.run(settings.model_copy(update=update), device="cpu", progress=lambda _: None)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return settings


def _champion_check(result):
    (check,) = [c for c in result.checks if c.name == NO_WORSE]
    return check


def test_a_small_weekly_retailer_passes_on_the_weeks_its_champion_never_saw(
    weekly, monkeypatch, capsys
):
    settings, client = fresh(weekly, "weekly_pass", sources=(CHALLENGER, FOUR_WEEKS_LATER))
    name = settings.model_name
    lifecycle.promote(settings, "2", Stage.production, force=True, reason="the later champion")
    for key, value in {
        "DEMAND_DATA_DIR": str(settings.data_dir),
        "DEMAND_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "DEMAND_MODEL_NAME": name,
        "DEMAND_USER": "cli-user",
    }.items():
        monkeypatch.setenv(key, value)

    assert cli.main(["promote", "1", "--to", "production"]) == 0  # no --force
    shown = capsys.readouterr().out
    assert "✓ no worse than production" in shown
    assert "90% interval [" in shown and "resamples of 48 series" in shown
    assert "on the same 768 backtest rows" in shown  # 4 weeks × 48 series × 4 horizons
    assert "(4 weeks, 48 series)" in shown
    assert assert_consistent(client, name) == {"1": Stage.production, "2": Stage.archived}

    # the audit trail keeps the interval, not only the sentence
    (move,) = audit.history(client.get_model_version(name, "1").tags)[-1:]
    evidence = _champion_check(move.gate_result).evidence
    assert evidence["groups"] == 48 and evidence["draws"] == 2000 and evidence["level"] == 0.9
    assert evidence["low"] <= evidence["difference"] <= evidence["high"] <= evidence["margin"]


def test_too_few_unseen_weeks_is_a_refusal_naming_what_is_missing(weekly):
    settings, _client = fresh(weekly, "weekly_refused", sources=(CHALLENGER, TWO_WEEKS_LATER))
    lifecycle.promote(settings, "2", Stage.production, force=True, reason="the later champion")
    with pytest.raises(lifecycle.GateRefused) as refused:
        lifecycle.promote(settings, "1", Stage.production)
    check = _champion_check(refused.value.result)
    assert not check.passed
    assert "only 2 target weeks after that (384 rows)" in check.detail
    assert "fewer than the 4 weeks the gate compares on (DEMAND_GATE_MIN_UNSEEN_WEEKS)" in (
        check.detail
    )
    assert "--force --reason" in check.detail
    # the minimum is a setting: two weeks may be enough for a team that says so
    two = settings.model_copy(update={"gate_min_unseen_weeks": 2})
    check = _champion_check(lifecycle.promote(two, "1", Stage.production).gates)
    assert check.passed and "(2 weeks, 48 series)" in check.detail
