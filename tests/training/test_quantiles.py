"""Quantile forecasts in training: wQL and coverage by hand, calibration, what a run records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow import MlflowClient

from demand import quantiles as qmath
from demand.contract import FeatureContract
from training.metrics import paired_difference, pinball, quantile_scores
from training.quantiles import WINDOW_ROWS, Known, calibrate, median_as_point

LEVELS = (0.1, 0.5, 0.9)


def test_wql_and_coverage_worked_out_by_hand():
    y = np.array([10.0, 0.0])
    q = np.array([[8.0, 10.0, 12.0], [0.0, 1.0, 3.0]])
    # pinball: row 1: 0.1·2, 0, 0.1·2; row 2: 0, 0.5·1, 0.1·3; wQL = 2 Σ / Σ|y| = 2 Σ / 10
    got = quantile_scores(y, q, LEVELS)
    assert got["wql_p10"] == pytest.approx(0.04)
    assert got["wql_p50"] == pytest.approx(0.10)
    assert got["wql_p90"] == pytest.approx(0.10)
    assert got["wql"] == pytest.approx(0.08)
    assert (got["coverage_p10"], got["coverage_p50"], got["coverage_p90"]) == (0.5, 1.0, 1.0)
    assert got["interval_coverage"] == 1.0
    # per row, the paired rule's loss: summed over rows and over Σ|y| it is the mean wQL
    assert pinball(y, q, LEVELS).sum() / 10 == pytest.approx(0.08)
    same = paired_difference(pinball(y, q, LEVELS), pinball(y, q, LEVELS), y, [0, 1], metric="wql")
    assert same.champion == pytest.approx(0.08) and same.difference == 0


def _counts(seed: int, rows: int = 6000):
    rng = np.random.default_rng(seed)
    mean = rng.gamma(0.6, 2.0, rows)  # many series near zero, some busy
    y = rng.poisson(mean).astype(float)
    # a model whose quantiles are all too narrow and a little low, as the raw ones were
    raw = np.stack([mean * 0.8 + 1e-7, mean * 0.9, mean], axis=1)
    horizons = np.tile([1, 2], rows // 2)
    return raw, y, horizons


def test_calibration_brings_the_central_interval_to_nominal_on_fresh_data():
    raw, y, horizons = _counts(1)
    offsets = calibrate(raw, y, np.ones(len(y)), horizons, LEVELS, counts=True)
    contract = _contract(offsets)
    fresh_raw, fresh_y, fresh_h = _counts(2)
    before = _contract({}).quantile_units(fresh_raw, np.ones(len(fresh_y)), fresh_h)
    after = contract.quantile_units(fresh_raw, np.ones(len(fresh_y)), fresh_h)
    cover = quantile_scores(fresh_y, after, LEVELS)["interval_coverage"]
    assert 0.75 <= cover <= 0.85, cover
    assert not 0.75 <= quantile_scores(fresh_y, before, LEVELS)["interval_coverage"] <= 0.85
    for h in (1, 2):
        rows = fresh_h == h
        by_h = quantile_scores(fresh_y[rows], after[rows], LEVELS)["interval_coverage"]
        assert 0.74 <= by_h <= 0.86, (h, by_h)
    assert set(np.unique(after)) <= set(range(1000))  # whole units, zeros among them
    assert (after[:, 0] == 0).any()


def _season(rows_per_week: int, weeks: int, wide_from: int, seed: int = 3):
    """Weekly rows of one horizon whose spread triples from week ``wide_from`` on (a season
    the earlier weeks did not see), forecast by a model that knows nothing of it."""
    rng = np.random.default_rng(seed)
    week = np.repeat(np.arange(weeks), rows_per_week)
    spread = np.where(week >= wide_from, 3.0, 1.0)
    y = np.maximum(0.0, 50 + rng.normal(0, 1, len(week)) * 5 * spread).round()
    raw = np.tile([[43.6, 50.0, 56.4]], (len(week), 1))  # the narrow weeks' P10, P50, P90
    target = np.datetime64("2024-01-07") + week * np.timedelta64(7, "D")
    return Known(raw, y, np.ones(len(y)), np.ones(len(y), dtype=int), target), target


def test_the_rolling_window_calibrates_on_the_latest_known_weeks():
    """At an origin 6 weeks into a wider season, the last 4 weeks' offsets cover 80 % of the
    new season's actuals; offsets from every known week (most of them narrow) do not."""
    known, target = _season(rows_per_week=100, weeks=26, wide_from=20)
    at, window = target.max(), np.timedelta64(28, "D")
    rolling = _contract(known.offsets(at, window, LEVELS, counts=True))
    everything = _contract(known.offsets(at, np.timedelta64(3650, "D"), LEVELS, counts=True))
    fresh, _ = _season(rows_per_week=1000, weeks=1, wide_from=0, seed=4)
    ones, h = np.ones(len(fresh.y)), fresh.horizon
    cover = quantile_scores(fresh.y, rolling.quantile_units(fresh.raw, ones, h), LEVELS)
    assert 0.75 <= cover["interval_coverage"] <= 0.85, cover
    old = quantile_scores(fresh.y, everything.quantile_units(fresh.raw, ones, h), LEVELS)
    assert old["interval_coverage"] < 0.7, old
    # nothing after the origin is read: at week 21 the offsets are those of the weeks to 21
    early = target[0] + np.timedelta64(21 * 7, "D")
    before = _cut(known, known.target <= early)
    assert known.offsets(early, window, LEVELS, True) == before.offsets(early, window, LEVELS, True)


def _cut(known: Known, rows) -> Known:
    return Known(*(a[rows] for a in (known.raw, known.y, known.scale, known.horizon, known.target)))


def test_a_thin_window_reaches_back_to_its_latest_rows():
    """Too few rows in the window: the latest WINDOW_ROWS, not every known row."""
    known, target = _season(rows_per_week=WINDOW_ROWS // 4, weeks=40, wide_from=32)
    at = target.max()
    thin = known.offsets(at, np.timedelta64(7, "D"), LEVELS, counts=True)
    latest = known.target > at - np.timedelta64(28, "D")  # the last 4 weeks: WINDOW_ROWS
    assert latest.sum() == WINDOW_ROWS
    cut = Known(
        *(a[latest] for a in (known.raw, known.y, known.scale, known.horizon)), known.target[latest]
    )
    assert thin == cut.offsets(at, np.timedelta64(28, "D"), LEVELS, counts=True)


def _contract(offsets) -> FeatureContract:
    import json

    return FeatureContract(
        feast_project="p",
        feature_service="s",
        feature_views={},
        features=["f"],
        dtypes={"f": "float"},
        categorical=[],
        entity_keys=["store_id", "product_id"],
        request_features=[],
        horizon=2,
        train_start="2023-01-01",
        train_end="2023-02-01",
        training_set_hash="h",
        device="CPU",
        extra={
            "quantiles": "0.1,0.5,0.9",
            "quantile_counts": "true",
            "quantile_offsets": json.dumps(offsets),
        },
    )


def test_the_p50_scored_as_a_point_forecast_reads_the_median_column():
    label = np.array([0.0, 0.0, 1.0, 3.0])
    units = np.array([[0, 0, 1], [0, 1, 2], [0, 1, 2], [1, 2, 5]], dtype=float)
    # the P50s sum to 4 against 4 sold: no bias; the P10s (1) or P90s (10) would say -75 %/+150 %
    assert median_as_point(label, units, (0.1, 0.5, 0.9)) == {"p50_bias": 0.0}
    assert median_as_point(label, units[:, [0, 2]], (0.1, 0.9)) == {}


def test_a_training_run_records_quantiles_metrics_and_plot(serving_env):
    """The session's model was trained with the default DEMAND_QUANTILES."""
    client = MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri)
    version = client.get_model_version(serving_env.model_name, "1")
    contract = FeatureContract.from_tags(version.tags)
    assert contract.quantiles == LEVELS
    assert contract.extra["quantile_device"] == "CPU"
    assert set(json.loads(contract.extra["quantile_offsets"])) == {str(h) for h in range(1, 8)}
    dependence = contract.dependence
    assert dependence.shape == (7, 7) and np.allclose(np.diag(dependence), 1)
    run = client.get_run(version.run_id)
    metrics = run.data.metrics
    for name in (
        "wql",
        "wql_p10",
        "coverage_p90",
        "interval_coverage",
        "baseline_interval_wql",
        "baseline_interval_interval_coverage",
        "lead_time_coverage_p90",
        "lead_time_summed_coverage_p90",
        "p50_bias",
        *(f"interval_coverage_h{h}" for h in range(1, 8)),
    ):
        assert name in metrics, name
    assert run.data.params["quantiles"] == "0.1,0.5,0.9"
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "plots")}
    assert "plots/calibration.png" in artifacts
    tables = {a.path for a in client.list_artifacts(version.run_id, "backtest")}
    assert "backtest/quantiles_by_horizon.csv" in tables
    # quantiles are whole units on the tiny retailer's counts
    assert contract.quantile_counts


def test_duplicated_quantiles_exit_2_naming_the_setting(monkeypatch, capsys, clean_demand_env):
    from cli.main import main

    monkeypatch.setenv("DEMAND_QUANTILES", "0.1,0.9,0.1")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "DEMAND_QUANTILES" in err and "more than once" in err and "Traceback" not in err


def test_levels_round_trip():
    assert qmath.parse_levels("0.1,0.5,0.9") == LEVELS
