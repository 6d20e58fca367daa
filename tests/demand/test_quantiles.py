"""The quantile arithmetic shared by training and serving: levels, support, lead-time sums."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import poisson

from demand import quantiles as q


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.1,0.1,0.9", "0.1 given more than once"),
        ("0.1,1", "1 is outside (0, 1)"),
        ("0,0.5", "0 is outside (0, 1)"),
        ("-0.2", "-0.2 is outside (0, 1)"),
        ("0.1;0.9", "is not a number"),
    ],
)
def test_bad_levels_are_refused_saying_why(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        q.parse_levels(text)


def test_levels_are_sorted_and_empty_means_none():
    assert q.parse_levels(" 0.9, 0.1 ,0.5") == (0.1, 0.5, 0.9)
    assert q.parse_levels("") == ()
    assert q.column(0.1) == "units_p10" and q.label(0.1) == "0.1"


def test_support_keeps_zeros_and_whole_units():
    # a P10 of 1e-7 is 0 units; -0.3 is not a sale
    assert q.support(np.array([1e-7, -0.3, 2.49, 2.5, 7.2]), counts=True).tolist() == [
        0,
        0,
        2,
        3,
        7,
    ]
    assert q.support(np.array([1e-7, -0.3]), counts=False).tolist() == [1e-7, 0]
    assert q.non_crossing(np.array([[3.0, 1.0, 2.0]])).tolist() == [[1, 2, 3]]


def test_quantile_function_passes_through_its_knots_and_pit_inverts_it():
    levels = (0.1, 0.5, 0.9)
    values = np.array([[2.0, 5.0, 9.0]])
    at = q.quantile_function(levels, values, np.array([[0.05, 0.1, 0.3, 0.5, 0.9, 0.95]]))
    assert np.allclose(at[0, :5], [1.0, 2.0, 3.5, 5.0, 9.0])
    assert at[0, 5] > 9.0  # the tail goes on above the top level
    assert np.allclose(q.pit(levels, values, np.array([3.5])), 0.3, atol=1e-6)


def test_lead_time_quantiles_of_independent_poisson_days_are_those_of_the_sum():
    """Seven independent Poisson(3) days: the 7-day total is Poisson(21), whose P10 and
    P90 are 15 and 27; adding the daily P90s (5 each) would say 35."""
    levels = (0.1, 0.5, 0.9)
    daily = poisson.ppf(levels, 3.0)
    per = np.tile(daily, (4, 7, 1))
    got = q.lead_time_quantiles(levels, per, np.eye(7), levels, counts=True)
    truth = poisson.ppf(levels, 21.0)
    assert np.allclose(got[0], got[3])  # the same draws for every key
    assert np.all(np.abs(got[0] - truth) <= 2), (got[0], truth)
    assert got[0, 2] < per[0, :, 2].sum() - 5


def test_dependence_widens_the_total():
    """Days that move together (correlation 1) add their spreads; independent ones do not."""
    levels = (0.1, 0.5, 0.9)
    per = np.tile([2.0, 5.0, 9.0], (1, 7, 1))
    together = q.lead_time_quantiles(
        levels, per, np.ones((7, 7)) * 0.999 + np.eye(7) * 0.001, levels, counts=False
    )
    apart = q.lead_time_quantiles(levels, per, np.eye(7), levels, counts=False)
    assert together[0, 2] - together[0, 0] > 1.5 * (apart[0, 2] - apart[0, 0])
    assert abs(together[0, 2] - 63) < 2  # perfectly dependent: 7 × the daily P90
