"""The promotion gates as pure functions: a table of cases, no MLflow."""

import math

import pytest

from registry.gates import (
    BEATS_BASELINES,
    Backtest,
    GateResult,
    Rescore,
    Stage,
    production_gate,
    staging_gate,
)


def weekly(wape: float, seasonal: float, average: float, naive: float = 0.9) -> Backtest:
    return Backtest(
        wape, {"seasonal_naive_52w": seasonal, "moving_average_4w": average, "naive_1w": naive}
    )


GOOD = weekly(0.40, 0.60, 0.50)


def rescore(challenger: float, champion: float | None) -> Rescore:
    return Rescore(
        challenger_wape=challenger,
        champion_wape=champion,
        champion_version=None if champion is None else "3",
        rows=1200,
        window="2023-06-04..2023-07-29",
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
    ("case", "challenger", "champion", "tolerance", "passed", "in_detail"),
    [
        ("better than champion", 0.40, 0.45, 0.0, True, "0.4000 ≤ 0.4500"),
        ("equal, no tolerance: no worse", 0.45, 0.45, 0.0, True, "0.4500 ≤ 0.4500"),
        ("worse within tolerance", 0.46, 0.45, 0.05, True, "0.4600 ≤ 0.4725"),
        ("worse beyond tolerance", 0.48, 0.45, 0.05, False, "0.4800 > 0.4725"),
        ("worse, no tolerance", 0.4501, 0.45, 0.0, False, "0.4501 > 0.4500"),
        ("missing champion", 0.40, None, 0.0, True, "no production version yet"),
        ("challenger not scorable", math.nan, 0.45, 0.0, False, "nan"),
    ],
)
def test_production_gate_against_champion(case, challenger, champion, tolerance, passed, in_detail):
    result = production_gate(GOOD, [], rescore(challenger, champion), tolerance)
    check = result.checks[-1]
    assert check.name == "no worse than production"
    assert check.passed is passed, case
    assert result.passed is passed, case
    assert in_detail in check.detail
    if champion is not None:
        # the message names the champion, the tolerance and the rows compared
        assert "production v3" in check.detail
        assert f"tolerance {tolerance:g}" in check.detail
        assert "1,200 backtest rows" in check.detail


def test_production_gate_includes_the_staging_checks():
    result = production_gate(weekly(0.7, 0.6, 0.5), [], rescore(0.3, 0.4), 0.0)
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
    problem = Rescore(0.3, None, "2", 0, "?", problem="the feature data changed since")
    result = production_gate(GOOD, [], problem, 0.0)
    assert not result.passed
    assert "the feature data changed since" in result.explain()


def test_gate_result_round_trips_through_json():
    result = production_gate(GOOD, ["no features"], rescore(0.5, 0.45), 0.1)
    assert GateResult.from_json(result.to_json()) == result
