"""The gates on quantile forecasts: calibrated central interval, wQL against the baseline
interval (staging) and against production under the paired rule; versions without them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlflow import MlflowClient

from registry.gates import (
    Backtest,
    Intervals,
    intervals_calibrated,
    intervals_no_worse_than_champion,
    staging_gate,
)
from training.metrics import paired_difference

LEVELS = (0.1, 0.5, 0.9)


@pytest.mark.parametrize(
    ("coverage", "wql", "baseline", "passed"),
    [
        (0.80, 0.30, 0.40, (True, True)),
        (0.75, 0.30, 0.40, (True, True)),  # 5 points under nominal: still within
        (0.85, 0.30, 0.40, (True, True)),
        (0.74, 0.30, 0.40, (False, True)),
        (0.86, 0.30, 0.40, (False, True)),  # too wide is miscalibrated too
        (0.80, 0.40, 0.40, (True, False)),  # a tie does not beat the baseline
        (0.80, 0.45, 0.40, (True, False)),
        (math.nan, math.nan, 0.40, (False, False)),  # a missing metric never passes
    ],
)
def test_staging_interval_checks_as_a_table(coverage, wql, baseline, passed):
    checks = intervals_calibrated(Intervals(LEVELS, coverage, wql, baseline, {1: coverage}))
    assert tuple(c.passed for c in checks) == passed
    assert f"{wql:.4f}" in checks[1].detail and f"{baseline:.4f}" in checks[1].detail


def test_the_staging_gate_asks_about_intervals_when_the_run_has_them():
    good = Intervals(LEVELS, 0.80, 0.30, 0.40, {1: 0.79, 2: 0.81})
    bad = Intervals(LEVELS, 0.93, 0.30, 0.40, {1: 0.93})
    backtest = Backtest(0.40, {"seasonal_naive_7d": 0.60})
    assert len(staging_gate(backtest, []).checks) == 2  # not read: as before quantiles
    ok = staging_gate(Backtest(0.40, {"seasonal_naive_7d": 0.60}, good), [])
    assert ok.passed and len(ok.checks) == 4
    refused = staging_gate(Backtest(0.40, {"seasonal_naive_7d": 0.60}, bad), [])
    assert not refused.passed and "0.930" in refused.explain()


def test_a_version_without_quantiles_cannot_be_judged_on_intervals_and_says_so():
    checks = intervals_calibrated(Intervals())
    assert all(c.passed for c in checks)
    assert all("cannot judge intervals" in c.detail for c in checks)
    check = intervals_no_worse_than_champion(None, 0.0, "production v3 has no quantiles")
    assert check.passed and "cannot judge intervals: production v3" in check.detail


def test_production_wql_uses_the_paired_rule():
    rng = np.random.default_rng(0)
    rows = 4000
    y = rng.poisson(4, rows).astype(float)
    champion = rng.gamma(2, 0.5, rows)
    groups = np.repeat(np.arange(200), rows // 200)
    worse = intervals_no_worse_than_champion(
        paired_difference(champion, champion * 1.3, y, groups, metric="wql"), 0.0
    )
    assert not worse.passed and "upper end >" in worse.detail
    better = intervals_no_worse_than_champion(
        paired_difference(champion, champion * 0.9, y, groups, metric="wql"), 0.0
    )
    assert better.passed
    # a small gap inside the noise passes only under a margin that covers its interval
    slight = paired_difference(champion, champion * 1.01, y, groups, metric="wql")
    assert not intervals_no_worse_than_champion(slight, 0.0).passed
    assert intervals_no_worse_than_champion(slight, slight.high + 1e-9).passed


def test_run_facts_read_the_interval_backtest_of_a_trained_version(serving_env):
    from registry.state import run_facts

    client = MlflowClient(serving_env.tracking_uri, serving_env.tracking_uri)
    version = client.get_model_version(serving_env.model_name, "1")
    intervals = run_facts(client, version).backtest.intervals
    run = client.get_run(version.run_id).data.metrics
    assert intervals.levels == LEVELS and intervals.nominal == pytest.approx(0.8)
    assert intervals.coverage == run["interval_coverage"]
    assert intervals.baseline_wql == run["baseline_interval_wql"]
    assert sorted(intervals.coverage_by_horizon) == list(range(1, 8))


def test_coverage_is_gated_only_with_a_tolerance_and_reported_without():
    off = Intervals(LEVELS, 0.70, 0.2, 0.4, {1: 0.70})
    gated = intervals_calibrated(off, 0.05)
    assert [c.passed for c in gated] == [False, True]
    (reported,) = intervals_calibrated(off, None)
    assert reported.passed and "covered 0.700" in reported.detail
    assert "not gated" in reported.detail


def test_the_coverage_is_gated_by_default_and_off_only_reports_it():
    from demand.settings import get_settings

    assert get_settings().gate_coverage_tolerance == 0.05
    off = Intervals(LEVELS, 0.70, 0.2, 0.4, {1: 0.70})
    default = intervals_calibrated(off, get_settings().gate_coverage_tolerance)
    assert not default[0].passed
    for word in ("off", "OFF", ""):
        tolerance = get_settings(gate_coverage_tolerance=word).gate_coverage_tolerance
        assert tolerance is None
        assert all(c.passed for c in intervals_calibrated(off, tolerance))
