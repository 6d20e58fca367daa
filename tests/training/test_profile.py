"""Reference profiles and PSI: values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training import profile


def test_psi_by_hand():
    # two bins: (0.5 - 0.25)·ln(0.5/0.25) + (0.5 - 0.75)·ln(0.5/0.75)
    expected = 0.25 * math.log(2) - 0.25 * math.log(2 / 3)
    assert profile.psi([0.25, 0.75], [0.5, 0.5]) == pytest.approx(expected)
    assert profile.psi([0.3, 0.7], [0.3, 0.7]) == 0.0


def test_numeric_profile_bins_a_tenth_each_and_counts_nulls():
    values = [*range(100), None, None]
    column = profile.column_profile(values, categorical=False)
    assert column["null_rate"] == pytest.approx(2 / 102)
    assert len(column["edges"]) == 9
    assert column["shares"] == pytest.approx([0.1] * 10)


def test_same_sample_has_no_drift_and_a_unit_change_has():
    rng = np.random.default_rng(0)
    reference = profile.column_profile(rng.normal(20, 5, 5000), categorical=False)
    again, _, _ = profile.shares_like(reference, rng.normal(20, 5, 5000))
    assert profile.psi(profile.reference_shares(reference), again) < 0.02
    tenfold, _, _ = profile.shares_like(reference, rng.normal(20, 5, 5000) * 10)
    assert profile.psi(profile.reference_shares(reference), tenfold) > 1


def test_categorical_shares_put_unseen_values_in_other():
    reference = profile.column_profile(["a"] * 6 + ["b"] * 4, categorical=True)
    assert reference["shares"] == {"a": 0.6, "b": 0.4, profile.OTHER: 0.0}
    shares, null_rate, present = profile.shares_like(reference, ["a", "c", "c", None])
    assert shares == pytest.approx([1 / 3, 0.0, 2 / 3])
    assert (null_rate, present) == (0.25, 3)


def test_feed_ages_from_the_tables(tmp_path):
    day = pd.Timestamp("2024-03-10", tz="UTC")
    sales = pd.DataFrame({"event_timestamp": [day - pd.Timedelta(days=d) for d in range(5)]})
    weather = pd.DataFrame({"event_timestamp": [day - pd.Timedelta(days=d) for d in (2, 3, 4)]})
    lifespan = pd.DataFrame({"event_timestamp": [day - pd.Timedelta(days=d) for d in (6, 34)]})
    for name, frame in {"sales": sales, "weather": weather, "lifespan": lifespan}.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    feeds = profile.feed_ages(
        {v: tmp_path / f"{v}.parquet" for v in ("sales", "weather", "lifespan")}, "sales"
    )
    assert feeds["sales"] == {"age_days": 0.0, "cadence_days": 1.0}
    assert feeds["weather"] == {"age_days": 2.0, "cadence_days": 1.0}
    assert feeds["lifespan"] == {"age_days": 6.0, "cadence_days": 28.0}
