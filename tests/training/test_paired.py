"""The paired comparison the gates use: a block bootstrap of a loss ratio's difference."""

import numpy as np
import pytest

from training.metrics import paired_difference


def _rows(seed: int, series: int = 200, days: int = 28, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    level = rng.gamma(2.0, 5.0, size=series).repeat(days)
    actual = rng.poisson(level).astype(float)
    champion = np.abs(actual - level)
    # each series' own error of the challenger: a series it gets wrong, it gets wrong daily
    bias = rng.normal(shift, 0.3, size=series).repeat(days)
    challenger = np.abs(actual - level * (1 + bias))
    groups = np.arange(series).repeat(days)
    return champion, challenger, actual, groups


def test_a_clearly_better_challenger_has_an_interval_below_zero():
    champion, _, actual, groups = _rows(1)
    result = paired_difference(champion, champion * 0.8, actual, groups, seed=3)
    assert result.high < 0
    assert result.difference == pytest.approx(result.challenger - result.champion)


def test_an_equal_challenger_has_an_interval_that_holds_zero():
    champion, _, actual, groups = _rows(2)
    result = paired_difference(champion, champion[::-1].copy(), actual, groups, seed=3)
    assert result.low <= 0 <= result.high


def test_blocks_widen_the_interval_over_row_resampling():
    # one series' days move together: resampling rows alone understates the spread
    champion, challenger, actual, groups = _rows(4, shift=0.05)
    by_series = paired_difference(champion, challenger, actual, groups, seed=5)
    by_row = paired_difference(champion, challenger, actual, np.arange(len(actual)), seed=5)
    assert (by_series.high - by_series.low) > 1.5 * (by_row.high - by_row.low)


def test_the_point_figures_are_the_ratios_of_sums():
    result = paired_difference([1, 3], [2, 2], [4, 4], ["a", "b"], draws=50)
    assert result.champion == pytest.approx(0.5)
    assert result.challenger == pytest.approx(0.5)
    assert result.groups == 2


def test_nothing_sold_gives_nan_not_an_error():
    result = paired_difference([1.0], [1.0], [0.0], [0])
    assert np.isnan(result.difference)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one value per row"):
        paired_difference([1.0, 2.0], [1.0], [1.0, 1.0], [0, 1])
