"""Drift: a unit change (×10), a feed gone null and a feed that stopped, each caught at once.

The pure comparison here; ``test_drift_online.py`` plants the same in the feature tables
of a trained model and reads them back through the online store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from demand.settings import get_settings
from monitoring import alerts, drift
from training import profile

SETTINGS = get_settings(monitor_psi_threshold=0.25, monitor_null_rate_change=0.1)


def _night(rng, rows=3000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "temperature_c": rng.normal(18, 6, rows),
            "list_price": rng.gamma(3, 4, rows),
            "units_lag_1": rng.poisson(3, rows).astype(float),
            "category": rng.choice(["garden", "kitchen", "sports"], rows),
        }
    )


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(1)
    frame = _night(rng)
    feeds = {
        "sales": {"age_days": 0.0, "cadence_days": 1.0},
        "weather": {"age_days": 0.0, "cadence_days": 1.0},
        "lifespan": {"age_days": 5.0, "cadence_days": 28.0},
    }
    return profile.reference_profile(frame, ["category"], frame["units_lag_1"] + 0.3, feeds)


FEEDS_NOW = {
    "sales": {"age_days": 0.0, "cadence_days": 1.0},
    "weather": {"age_days": 0.0, "cadence_days": 1.0},
    "lifespan": {"age_days": 20.0, "cadence_days": 28.0},
}


def _compare(reference, frame, feeds=FEEDS_NOW):
    table, feed_table = drift.compare(reference, frame, frame["units_lag_1"] + 0.3, SETTINGS, feeds)
    return table.set_index("feature"), feed_table.set_index("feed")


def test_an_ordinary_night_drifts_nowhere(reference):
    table, feeds = _compare(reference, _night(np.random.default_rng(2)))
    assert not table["drifted"].any(), table
    assert not feeds["stopped"].any()
    assert table.loc["temperature_c", "psi"] < 0.05


def test_a_price_in_cents_is_caught(reference):
    frame = _night(np.random.default_rng(3))
    frame["list_price"] *= 10
    table, _ = _compare(reference, frame)
    assert table["drifted"].to_dict() == {
        "list_price": True,
        "temperature_c": False,
        "units_lag_1": False,
        "category": False,
        profile.PREDICTION: False,
    }
    assert table.loc["list_price", "psi"] > 1


def test_a_feed_gone_null_is_caught(reference):
    frame = _night(np.random.default_rng(4))
    frame["temperature_c"] = np.nan
    table, _ = _compare(reference, frame)
    assert table.loc["temperature_c", "drifted"]
    assert table.loc["temperature_c", "null_rate_now"] == 1.0
    assert "nulls 0% → 100%" in table.loc["temperature_c", "why"]
    assert table["drifted"].sum() == 1


def test_a_feed_that_stopped_is_caught_the_first_night(reference):
    # the daily weather feed missed one day; the 28-day lifespan estimate is 20 days old
    # (normal for it), the sales feed is current
    feeds = {**FEEDS_NOW, "weather": {"age_days": 1.0, "cadence_days": 1.0}}
    _, table = _compare(reference, _night(np.random.default_rng(5)), feeds)
    assert table["stopped"].to_dict() == {"sales": False, "weather": True, "lifespan": False}


def test_drifted_features_become_alerts(reference):
    frame = _night(np.random.default_rng(6))
    frame["list_price"] *= 10
    table, feeds = drift.compare(reference, frame, None, SETTINGS, FEEDS_NOW)
    fired = alerts.drift_alerts(table, feeds, "3")
    assert [a.kind for a in fired] == ["drift"]
    assert fired[0].figures["feature"] == "list_price"
    assert "v3: list_price drifted (PSI" in fired[0].message


def test_a_feature_absent_tonight_is_reported(reference):
    frame = _night(np.random.default_rng(7)).drop(columns="list_price")
    table, _ = _compare(reference, frame)
    assert table.loc["list_price", "why"] == "absent tonight"


# the tiny retailer's night: 48 store × product keys (each served at 7 horizons)
FEW = 48


def test_psi_over_too_few_keys_is_not_judged(reference):
    # an ordinary night, but of a few dozen keys: sampling noise alone passes 0.25
    frame = _night(np.random.default_rng(8), rows=FEW)
    judged = get_settings(monitor_psi_min_keys=1)
    noisy, _ = drift.compare(reference, frame, frame["units_lag_1"] + 0.3, judged, FEEDS_NOW)
    assert noisy["drifted"].any(), noisy  # what PSI alone said of this night
    table, _ = _compare(reference, frame)
    assert not table["drifted"].any(), table
    assert table["psi"].isna().all()
    assert table["note"].str.startswith("too few rows to judge PSI: 48 keys").all()


def test_vectors_count_once_per_key(reference):
    # 3,000 vectors, but of 48 keys (a key's vectors at every horizon share most values)
    frame = _night(np.random.default_rng(9))
    table, _ = drift.compare(reference, frame, None, SETTINGS, FEEDS_NOW, keys=FEW)
    table = table.set_index("feature")
    assert table["psi"].isna().all() and "48 keys" in table.loc["list_price", "note"]
    enough, _ = drift.compare(reference, frame, None, SETTINGS, FEEDS_NOW, keys=3000)
    assert enough["psi"].notna().all() and not enough["note"].any()


@pytest.mark.parametrize("fault", ["price in cents", "feed gone null"])
def test_planted_faults_are_caught_over_few_keys(reference, fault):
    frame = _night(np.random.default_rng(10), rows=FEW)
    if fault == "price in cents":
        frame["list_price"] *= 10
        caught, why = "list_price", "outside the reference's range"
    else:
        frame["temperature_c"] = np.nan
        caught, why = "temperature_c", "nulls 0% → 100%"
    table, _ = _compare(reference, frame)
    assert table.index[table["drifted"]].tolist() == [caught]
    assert why in table.loc[caught, "why"]
