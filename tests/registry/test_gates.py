"""The promotion gates as pure functions: a table of cases, no MLflow."""

import math

import pytest

from registry.gates import Backtest, GateResult, Rescore, Stage, production_gate, staging_gate

GOOD = Backtest(wape=0.40, seasonal_naive_wape=0.60, moving_average_28_wape=0.50)


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
            Backtest(0.55, 0.60, 0.50),
            [],
            False,
            ["beats moving_average_28"],
            ["0.5500", "0.5000"],
        ),
        (
            "ties seasonal naive",
            Backtest(0.60, 0.60, 0.70),
            [],
            False,
            ["beats seasonal_naive"],
            ["0.6000 is not below seasonal_naive 0.6000"],
        ),
        (
            "metric missing (NaN)",
            Backtest(math.nan, 0.60, 0.50),
            [],
            False,
            ["beats seasonal_naive", "beats moving_average_28"],
            ["nan"],
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
    result = production_gate(Backtest(0.7, 0.6, 0.5), [], rescore(0.3, 0.4), 0.0)
    assert not result.passed
    assert [c.name for c in result.failures] == ["beats seasonal_naive", "beats moving_average_28"]


def test_a_rescoring_problem_fails_the_gate_with_its_reason():
    problem = Rescore(0.3, None, "2", 0, "?", problem="the feature data changed since")
    result = production_gate(GOOD, [], problem, 0.0)
    assert not result.passed
    assert "the feature data changed since" in result.explain()


def test_gate_result_round_trips_through_json():
    result = production_gate(GOOD, ["no features"], rescore(0.5, 0.45), 0.1)
    assert GateResult.from_json(result.to_json()) == result
