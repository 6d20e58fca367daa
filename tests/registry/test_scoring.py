"""The production gate scores backtest models, never the refit model a version serves.

Three tiny versions are trained once on the same data (40 trees each), differing only
in their backtest window: v1 (the challenger) is backtested on origins from 56 days
before the last day, v2 on the last 28 days (its backtest model saw the labels of the
first half of v1's window), v3 on the last 7 (it saw nearly all of v1's window).
"""

from __future__ import annotations

import json
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from demand.contract import TAG_PREFIX, FeatureContract
from demand.featurestore import open_store
from demand.settings import Settings
from registry import lifecycle, scoring
from registry.gates import Stage
from training import dataset, train

# trains a champion and challengers, then re-scores them
pytestmark = pytest.mark.slow

CHALLENGER, LATER, LATEST = "1", "2", "3"


@pytest.fixture(scope="module")
def versions(feature_env, tmp_path_factory):
    mlflow_dir = tmp_path_factory.mktemp("scoring_mlflow")
    settings = feature_env.model_copy(
        update={
            "iterations": 40,
            "mlflow_tracking_uri": f"sqlite:///{mlflow_dir}/mlflow.db",
            "origin_every_days": 3,
            "model_name": "scored",
            "user": "tester",
        }
    )
    for test_days in (56, 28, 7):
        train.run(settings.model_copy(update={"test_days": test_days}), progress=lambda _: None)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return settings


def _client(settings) -> MlflowClient:
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


def _contract(settings, version: str) -> FeatureContract:
    tags = _client(settings).get_model_version(settings.model_name, version).tags
    return FeatureContract.from_tags(tags)


def _rows(settings, version: str = CHALLENGER) -> scoring.BacktestRows:
    client = _client(settings)
    run_id = client.get_model_version(settings.model_name, version).run_id
    params = client.get_run(run_id).data.params
    return scoring.backtest_rows(settings, _contract(settings, version), params, lambda _: None)


def _wape(uri: str, contract: FeatureContract, frame: pd.DataFrame) -> float:
    """Worked out here: the model at ``uri`` in units (clipped at zero, times each row's
    level for a scaled model), Σ|error| / Σ units."""
    predicted = mlflow.catboost.load_model(uri).predict(contract.model_frame(frame))
    if contract.target_scale:
        predicted = np.clip(predicted, 0, None) * np.fmax(
            frame[contract.target_scale].to_numpy(dtype=float),
            float(contract.extra["target_scale_floor"]),
        )
    label = frame["label"].to_numpy()
    return float(np.abs(label - np.clip(predicted, 0, None)).sum() / label.sum())


def _fresh(settings, sources: tuple[str, ...]):
    """A registered model of its own whose versions 1, 2… copy ``sources``."""
    name = f"gate_{uuid.uuid4().hex[:8]}"
    client = _client(settings)
    for source in sources:
        client.copy_model_version(f"models:/{settings.model_name}/{source}", name)
    return settings.model_copy(update={"model_name": name})


def test_the_gate_scores_the_backtest_model_not_the_served_one(versions):
    name = versions.model_name
    contract = _contract(versions, CHALLENGER)
    assert contract.backtest_model_uri(name, CHALLENGER) == f"models:/{name}/1/backtest_model"
    rows = _rows(versions)
    gate = scoring.wape(name, CHALLENGER, contract, rows, lambda _: None)

    frame = rows.frames[contract.feature_service]
    run_id = _client(versions).get_model_version(name, CHALLENGER).run_id
    logged = _client(versions).get_run(run_id).data.metrics["wape"]
    # the WAPE training logged with the model it had just fitted before the window
    assert gate == pytest.approx(logged, abs=1e-9)
    assert gate == pytest.approx(_wape(f"models:/{name}/1/backtest_model", contract, frame))
    # the served model trained on these rows: scored here it would look much better
    served = _wape(f"models:/{name}/1", contract, frame)
    assert served < gate - 0.02


def test_the_gate_scores_the_rows_and_values_of_the_whole_rebuilt_set(versions):
    """The gate rebuilds the backtest window alone; the path before rebuilt the whole
    training set and kept the window's rows. Same rows, same values, same WAPE."""
    name = versions.model_name
    contract = _contract(versions, CHALLENGER)
    rows = _rows(versions)
    frame = rows.frames[contract.feature_service]
    whole = dataset.build(open_store(rows.settings), rows.settings, progress=lambda _: None)
    before = rows.select(whole.frame)
    assert 0 < len(before) < len(whole.frame)
    pd.testing.assert_frame_equal(frame.drop(columns="row_id"), before.drop(columns="row_id"))
    assert dataset.digest(before, whole.features) == contract.extra["backtest_hash"]
    gate = scoring.wape(name, CHALLENGER, contract, rows, lambda _: None)
    uri = f"models:/{name}/1/backtest_model"
    assert gate == pytest.approx(_wape(uri, contract, before), abs=1e-12)


def test_a_version_from_before_the_refit_is_scored_with_its_registered_model(versions):
    """No ``backtest_model`` in its contract: its registered model was fitted before its
    window, so that one is scored (planted here on a copy of v1 with the key removed)."""
    settings = _fresh(versions, (CHALLENGER,))
    client = _client(settings)
    contract = _contract(versions, CHALLENGER)
    extra = {k: v for k, v in contract.extra.items() if not k.startswith("backtest_model")}
    client.set_model_version_tag(settings.model_name, "1", TAG_PREFIX + "extra", json.dumps(extra))
    old = _contract(settings, "1")
    assert old.backtest_model_uri(settings.model_name, "1") == f"models:/{settings.model_name}/1"

    rows = _rows(versions)
    scored = scoring.wape(settings.model_name, "1", old, rows, lambda _: None)
    frame = rows.frames[contract.feature_service]
    assert scored == pytest.approx(_wape(f"models:/{settings.model_name}/1", old, frame))


def _champion_check(settings, challenger: str):
    """The gate's champion check when ``challenger`` is promoted to production."""
    try:
        outcome = lifecycle.promote(settings, challenger, Stage.production)
        checks = outcome.gates.checks
    except lifecycle.GateRefused as refused:
        checks = refused.result.checks
    (check,) = [c for c in checks if c.name == "no worse than production"]
    return check


def test_a_champion_trained_later_is_compared_on_the_rows_it_never_saw(versions):
    settings = _fresh(versions, (CHALLENGER, LATER))
    name = settings.model_name
    lifecycle.promote(settings, "2", Stage.production, force=True, reason="champion for the test")
    check = _champion_check(settings, "1")

    challenger, champion = _contract(settings, "1"), _contract(settings, "2")
    first_unseen = pd.Timestamp(champion.extra["backtest_start"])
    assert first_unseen > pd.Timestamp(challenger.extra["backtest_start"])
    frame = _rows(versions).frames[challenger.feature_service]
    unseen = frame[frame["target"] >= first_unseen]
    assert 0 < len(unseen) < len(frame)
    expected_challenger = _wape(f"models:/{name}/1/backtest_model", challenger, unseen)
    expected_champion = _wape(f"models:/{name}/2/backtest_model", champion, unseen)
    assert f"WAPE {expected_challenger:.4f} against {expected_champion:.4f}" in check.detail
    assert "(production v2)" in check.detail
    assert f"on the same {len(unseen):,} backtest rows" in check.detail
    days = unseen["target"].nunique()
    assert days >= versions.gate_min_unseen_days
    assert f"({days} days, " in check.detail
    assert f"target from {first_unseen:%Y-%m-%d} only" in check.detail
    # the champion's served model saw every one of these rows: never what is compared
    served = _wape(f"models:/{name}/2", champion, unseen)
    assert f"{served:.4f}" not in check.detail


def test_a_champion_that_saw_nearly_the_whole_window_is_a_refusal_not_a_verdict(versions):
    settings = _fresh(versions, (CHALLENGER, LATEST))
    lifecycle.promote(settings, "2", Stage.production, force=True, reason="champion for the test")
    check = _champion_check(settings, "1")

    champion = _contract(settings, "2")
    frame = _rows(versions).frames[champion.feature_service]
    unseen = frame[frame["target"] >= pd.Timestamp(champion.extra["backtest_start"])]
    days = unseen["target"].nunique()
    assert 0 < days < versions.gate_min_unseen_days
    assert not check.passed
    assert f"only {days} target days after that ({len(unseen):,} rows)" in check.detail
    assert "fewer than the 14 days the gate compares on (DEMAND_GATE_MIN_UNSEEN_DAYS)" in (
        check.detail
    )
    assert "--force --reason" in check.detail


# unseen_by on its own: plain frames, no MLflow


def _backtest_rows(targets: list[str], stores=("1", "2")) -> scoring.BacktestRows:
    """Each target day once per store (one product): two series."""
    frame = pd.DataFrame(
        [
            {"origin": pd.Timestamp("2024-03-01"), "target": pd.Timestamp(t), "label": 1.0,
             "store_id": store, "product_id": "p"}
            for t in targets
            for store in stores
        ]
    )  # fmt: skip
    rows = scoring.BacktestRows(None, pd.Timestamp("2024-03-01"), "2024-03-10")  # type: ignore[arg-type]
    rows.frames["svc"] = frame
    return rows


def _champion(backtest_start: str | None) -> FeatureContract:
    extra = {"backtest_start": backtest_start} if backtest_start else {}
    return FeatureContract(
        "p", "svc", {}, ["a"], {"a": "float"}, [], [], [], 1, "", "", "", "CPU", extra
    )


TARGETS = ["2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05", "2024-03-07", "2024-03-10"]


@pytest.mark.parametrize(
    ("backtest_start", "days", "days_left", "refusal"),
    [
        ("2024-02-20", 1, 6, None),  # trained earlier: every row, as they are
        ("2024-03-01", 9, 6, None),  # same window start: nothing seen, no minimum applies
        ("2024-03-05", 3, 3, None),  # saw targets through 03-04: those rows go
        ("2024-03-05", 4, None, "only 3 target days after that .6 rows., fewer than the 4 days"),
        ("2024-03-11", 1, None, "no row is unseen"),
        (None, 1, None, "records no backtest window"),
    ],
)
def test_unseen_by(backtest_start, days, days_left, refusal):
    rows = _backtest_rows(TARGETS)
    minimum = scoring.UnseenMinimum(days, "day", 0.5)
    if refusal:
        with pytest.raises(scoring.ScoringProblem, match=refusal):
            scoring.unseen_by(_champion(backtest_start), rows, minimum)
        return
    kept = scoring.unseen_by(_champion(backtest_start), rows, minimum)
    assert kept.rows == 2 * days_left
    assert kept.frames["svc"]["target"].min() >= pd.Timestamp(backtest_start)
    assert bool(kept.note) == (days_left < len(TARGETS))


def test_unseen_rows_must_cover_a_share_of_the_series():
    """Store 2's rows end before the champion's window: the later days are one series of two."""
    rows = _backtest_rows(TARGETS, stores=("1",))
    rows.frames["svc"] = pd.concat(
        [rows.frames["svc"], _backtest_rows(TARGETS[:3], stores=("2",)).frames["svc"]]
    )
    champion = _champion("2024-03-05")
    assert scoring.unseen_by(champion, rows, scoring.UnseenMinimum(3, "day", 0.5)).rows == 3
    with pytest.raises(scoring.ScoringProblem, match="only 1 of the backtest's 2 series have a"):
        scoring.unseen_by(champion, rows, scoring.UnseenMinimum(3, "day", 0.6))


def test_the_minimum_is_in_periods_of_the_grain():
    settings = Settings.model_construct(
        gate_min_unseen_days=10, gate_min_unseen_weeks=3, gate_min_unseen_key_share=0.5
    )
    assert scoring.UnseenMinimum.of(settings, "day") == scoring.UnseenMinimum(10, "day", 0.5)
    weekly = scoring.UnseenMinimum.of(settings, "week")
    assert weekly == scoring.UnseenMinimum(3, "week", 0.5)
    assert weekly.setting == "DEMAND_GATE_MIN_UNSEEN_WEEKS"
