"""The promotion gates as pure functions: a table of cases, no MLflow."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from demand.settings import Settings
from registry.gates import (
    BEATS_BASELINES,
    NO_WORSE,
    Backtest,
    GateResult,
    Rescore,
    Stage,
    paired_check,
    production_gate,
    staging_gate,
)


def _no_worse(result):
    """The paired WAPE check of a production gate (the wQL check may follow it)."""
    (check,) = [c for c in result.checks if c.name == NO_WORSE]
    return check


def weekly(wape: float, seasonal: float, average: float, naive: float = 0.9) -> Backtest:
    return Backtest(
        wape, {"seasonal_naive_52w": seasonal, "moving_average_4w": average, "naive_1w": naive}
    )


GOOD = weekly(0.40, 0.60, 0.50)


def rule(margin: float = 0.02, level: float = 0.9, draws: int = 2000) -> Settings:
    return Settings.model_construct(gate_margin=margin, gate_level=level, gate_draws=draws)


# 48 series over 8 periods, sales around each series' level; production forecasts the level
_rng = np.random.default_rng(11)
LEVEL = _rng.gamma(2.0, 5.0, size=48).repeat(8)
ACTUAL = _rng.poisson(LEVEL).astype(float)
SERIES = np.arange(48).repeat(8)
# forecasts of the challenger against that champion (WAPE 0.2285)
SAME = LEVEL
BETTER = LEVEL + 0.5 * (ACTUAL - LEVEL)  # WAPE 0.1142
# each series' forecast off by its own few percent: WAPE 0.2326, +0.0041 [-0.0000, +0.0086]
NOISY = LEVEL * _rng.normal(1, 0.04, size=48).repeat(8)
WORSE = LEVEL * 1.3  # WAPE 0.3686, +0.1401 [+0.1168, +0.1630]


def rescore(challenger, champion=LEVEL) -> Rescore:
    return Rescore(
        champion_version=None if champion is None else "3",
        rows=len(ACTUAL),
        window="2023-06-04..2023-07-29",
        actual=ACTUAL,
        challenger=np.asarray(challenger, dtype=float),
        champion=champion,
        series=SERIES,
    )


@pytest.mark.parametrize(
    ("case", "backtest", "problems", "passed", "failed_checks", "in_message"),
    [
        ("beats both, contract complete", GOOD, [], True, [], []),
        (
            "loses to moving average",
            weekly(0.55, 0.60, 0.50),
            [],
            False,
            [BEATS_BASELINES],
            ["0.5500 is not below moving_average_4w 0.5000, the best of"],
        ),
        (
            "ties seasonal naive",
            weekly(0.60, 0.60, 0.70),
            [],
            False,
            [BEATS_BASELINES],
            ["0.6000 is not below seasonal_naive_52w 0.6000"],
        ),
        (
            "beats two, loses to naive",
            weekly(0.55, 0.60, 0.70, naive=0.50),
            [],
            False,
            [BEATS_BASELINES],
            ["is not below naive_1w 0.5000"],
        ),
        (
            "model metric missing (NaN)",
            weekly(math.nan, 0.60, 0.50),
            [],
            False,
            [BEATS_BASELINES],
            ["nan"],
        ),
        (
            "a baseline's metric missing (NaN): never a silent pass",
            weekly(0.10, math.nan, 0.50),
            [],
            False,
            [BEATS_BASELINES],
            ["no WAPE for seasonal_naive_52w"],
        ),
        (
            "no baseline logged",
            Backtest(0.10, {}),
            [],
            False,
            [BEATS_BASELINES],
            ["the run logged no baseline's WAPE"],
        ),
        (
            "a version logged with the legacy names still gates",
            Backtest(0.40, {"seasonal_naive": 0.60, "moving_average_28": 0.45}),
            [],
            True,
            [],
            [],
        ),
        (
            "and still fails on them",
            Backtest(0.50, {"seasonal_naive": 0.60, "moving_average_28": 0.45}),
            [],
            False,
            [BEATS_BASELINES],
            ["0.5000 is not below moving_average_28 0.4500"],
        ),
        (
            "contract incomplete",
            GOOD,
            ["no features"],
            False,
            ["feature contract"],
            ["no features"],
        ),
    ],
)
def test_staging_gate(case, backtest, problems, passed, failed_checks, in_message):
    result = staging_gate(backtest, problems)
    assert result.target == Stage.staging
    assert result.passed is passed, case
    assert [c.name for c in result.failures] == failed_checks
    for text in in_message:
        assert text in result.explain()


@pytest.mark.parametrize(
    ("case", "challenger", "margin", "passed", "in_detail"),
    [
        (
            "better than champion",
            BETTER,
            0.0,
            True,
            "WAPE 0.1142 against 0.2285: difference -0.1142",
        ),
        ("the same forecasts: no worse, even at margin 0", SAME, 0.0, True, "[+0.0000, +0.0000]"),
        # the case: a hair worse on one window, which the old rule refused
        ("a hair worse, within the margin", NOISY, 0.02, True, "upper end ≤ margin 0.02"),
        ("a hair worse, margin 0: not shown no worse", NOISY, 0.0, False, "upper end > margin 0"),
        ("clearly worse", WORSE, 0.02, False, "difference +0.1401"),
        ("challenger not scorable", np.full(len(ACTUAL), np.nan), 0.02, False, "nan"),
    ],
)
def test_production_gate_against_champion(case, challenger, margin, passed, in_detail):
    result = production_gate(GOOD, [], rescore(challenger), rule(margin))
    check = _no_worse(result)
    assert check.name == NO_WORSE
    assert check.passed is passed, (case, check.detail)
    assert result.passed is passed, case
    assert in_detail in check.detail, check.detail
    # the message names the champion, the interval, its level and blocks, and the rows
    assert "production v3" in check.detail
    assert "on the same 384 backtest rows (2023-06-04..2023-07-29)" in check.detail
    if "nan" not in in_detail:
        assert "90% interval [" in check.detail
        assert "2,000 resamples of 48 series" in check.detail


def test_the_interval_is_the_paired_bootstrap_of_the_wape_difference():
    check = _no_worse(production_gate(GOOD, [], rescore(NOISY), rule()))
    evidence = check.evidence
    assert evidence["difference"] == pytest.approx(evidence["challenger"] - evidence["champion"])
    assert evidence["champion"] == pytest.approx(np.abs(ACTUAL - LEVEL).sum() / ACTUAL.sum())
    assert evidence["low"] < evidence["difference"] < evidence["high"] < 0.02
    assert (evidence["level"], evidence["draws"], evidence["groups"]) == (0.9, 2000, 48)
    assert evidence["margin"] == 0.02
    # a wider level widens it; the verdict follows the upper end
    wider = _no_worse(production_gate(GOOD, [], rescore(NOISY), rule(level=0.99))).evidence
    assert wider["low"] < evidence["low"] and wider["high"] > evidence["high"]


def test_a_paired_check_takes_any_ratio_loss_under_the_same_rule():
    """The hook another loss (wQL) uses: its own rows' losses, the same margin and level."""
    loss = np.abs(ACTUAL - LEVEL)
    check = paired_check("wQL no worse", loss, loss * 0.9, ACTUAL, SERIES, rule(), metric="wQL")
    assert check.passed and check.name == "wQL no worse"
    assert check.detail.startswith("wQL ")
    assert check.evidence["metric"] == "wql"
    worse = paired_check("wQL no worse", loss, loss * 1.5, ACTUAL, SERIES, rule(), metric="wQL")
    assert not worse.passed


def test_no_champion_passes_on_the_challengers_own_wape():
    result = production_gate(GOOD, [], rescore(BETTER, champion=None), rule())
    check = _no_worse(result)
    assert check.passed
    assert check.detail.startswith("no production version yet; WAPE 0.1142 on 384 backtest rows")
    assert check.evidence == {}


def test_a_passing_gate_explains_its_interval():
    result = production_gate(GOOD, [], rescore(NOISY), rule())
    assert result.passed
    explained = result.explain()
    assert explained.startswith("all 3 production checks passed; no worse than production: ")
    assert "90% interval [" in explained


def test_production_gate_includes_the_staging_checks():
    result = production_gate(weekly(0.7, 0.6, 0.5), [], rescore(BETTER), rule())
    assert not result.passed
    assert [c.name for c in result.failures] == [BEATS_BASELINES]


def test_a_pass_names_the_best_baseline_and_every_other():
    (check,) = staging_gate(GOOD, []).checks[:1]
    assert check.passed
    assert check.detail == (
        "WAPE 0.4000 < moving_average_4w 0.5000, the best of seasonal_naive_52w 0.6000, "
        "moving_average_4w 0.5000, naive_1w 0.9000"
    )


def test_a_rescoring_problem_fails_the_gate_with_its_reason():
    problem = Rescore("2", 0, "?", problem="the feature data changed since")
    result = production_gate(GOOD, [], problem, rule())
    assert not result.passed
    assert "the feature data changed since" in result.explain()


def test_gate_result_round_trips_through_json_with_its_evidence():
    result = production_gate(GOOD, ["no features"], rescore(NOISY), rule())
    assert GateResult.from_json(result.to_json()) == result
    recorded = json.loads(result.to_json())["checks"][-1]["evidence"]
    assert set(recorded) >= {"difference", "low", "high", "level", "draws", "groups", "margin"}


def test_a_result_recorded_before_paired_checks_still_reads():
    old = '{"checks": [{"detail": "WAPE 0.4 ≤ 0.5", "name": "no worse than production", '
    old += '"passed": true}], "target": "production"}'
    (check,) = GateResult.from_json(old).checks
    assert check.passed and check.evidence == {}


def test_the_production_gate_compares_wql_on_the_same_rows_when_both_have_quantiles():
    # each row's pinball loss under each version: the champion's are the WAPE rows' errors
    champion_loss = np.abs(ACTUAL - LEVEL)
    same = replace(rescore(LEVEL), champion_pinball=champion_loss, challenger_pinball=champion_loss)
    worse = replace(same, challenger_pinball=champion_loss * 1.5)
    (check,) = [c for c in production_gate(GOOD, [], same, rule()).checks if "wQL" in c.name]
    assert check.passed and check.evidence["metric"] == "wql"
    failed = production_gate(GOOD, [], worse, rule())
    assert [c.name for c in failed.failures] == ["wQL no worse than production"]


def test_a_version_without_quantiles_is_said_not_judged_on_intervals():
    unjudged = replace(rescore(LEVEL), unjudged="neither version forecasts quantiles")
    (check,) = [c for c in production_gate(GOOD, [], unjudged, rule()).checks if "wQL" in c.name]
    assert check.passed and "cannot judge intervals" in check.detail
