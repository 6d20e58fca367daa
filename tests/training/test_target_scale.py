"""The scaled target: units divided by a level known at the origin, multiplied back everywhere."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from demand.contract import FeatureContract
from demand.settings import get_settings
from training import model as demand_model


def _contract(**extra) -> FeatureContract:
    return FeatureContract(
        feast_project="p",
        feature_service="s",
        feature_views={},
        features=["store_id", "units_mean_28", "x"],
        dtypes={"store_id": "category", "units_mean_28": "float", "x": "float"},
        categorical=["store_id"],
        entity_keys=["store_id", "product_id"],
        request_features=[],
        horizon=7,
        train_start="2024-01-01",
        train_end="2024-06-30",
        training_set_hash="h",
        device="CPU",
        extra=extra,
    )


def test_an_unscaled_contract_gives_the_models_output_clipped():
    contract = _contract()
    assert contract.target_scale is None
    assert contract.units([-1.0, 2.5], [100.0, 100.0]).tolist() == [0.0, 2.5]


def test_a_scaled_contract_multiplies_by_the_level_never_below_the_floor():
    contract = _contract(target_scale="units_mean_28", target_scale_floor="0.25")
    levels = [40.0, 0.0, None, float("nan"), "3"]
    assert contract.levels(levels).tolist() == [40.0, 0.25, 0.25, 0.25, 3.0]
    units = contract.units([0.5, 2.0, 1.0, -1.0, 1.5], levels)
    assert units.tolist() == [20.0, 0.5, 0.25, 0.0, 4.5]
    # the contract round-trips through MLflow tags with its scale
    assert FeatureContract.from_tags(contract.to_tags()).target_scale == "units_mean_28"


def test_the_contract_says_when_the_models_raw_output_is_a_ratio():
    # a pyfunc loaded from MLflow predicts this; training writes it on the run and version
    assert _contract().output == "units"
    scaled = _contract(target_scale="units_mean_28", target_scale_floor="0.25").output
    assert scaled.startswith("a ratio, units / max(units_mean_28, 0.25)")


def test_the_floor_is_in_the_datas_own_unit():
    """The slowest sellers' level, not a constant: kilograms and 10^5 units alike."""
    levels = pd.Series([0.0, np.nan, *np.linspace(1_000, 100_000, 200)])
    floor = demand_model.scale_floor(levels)
    assert 1_000 <= floor < 5_000
    assert demand_model.scale_floor(pd.Series([0.0, np.nan])) == 1.0


def test_scaling_follows_the_setting_and_the_features():
    on, off = get_settings(), get_settings(target_scale="none")
    assert demand_model.scale_feature(on, ["units_mean_28"], "day") == "units_mean_28"
    assert demand_model.scale_feature(on, ["units_mean_13"], "week") == "units_mean_13"
    assert demand_model.scale_feature(on, ["units_lag_1"], "day") is None
    assert demand_model.scale_feature(off, ["units_mean_28"], "day") is None


def test_a_scaled_fit_forecasts_units_of_series_a_thousand_times_apart():
    """Two series with the same weekly shape, one at ~1 unit a day and one at ~1,000: the
    model learns one shape on the scaled target and forecasts each in its own units."""
    rng = np.random.default_rng(0)
    days = 400
    shape = np.tile([0.6, 0.8, 1.0, 1.0, 1.2, 1.6, 0.8], days // 7 + 1)[:days]
    frames = []
    for store, level in (("small", 1.0), ("big", 1_000.0)):
        units = rng.poisson(level * shape).astype(float)
        frames.append(
            pd.DataFrame(
                {
                    "store_id": store,
                    "units_mean_28": level,
                    "x": np.arange(days) % 7,
                    "label": units,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    contract = _contract(target_scale="units_mean_28", target_scale_floor="0.5")
    x = contract.model_frame(frame)
    levels = contract.levels(frame["units_mean_28"])
    settings = get_settings(iterations=200, learning_rate=0.2, depth=3)
    params = {**demand_model.params(settings, "CPU"), "thread_count": 1}
    model = demand_model.fit(
        x, frame["label"], x, frame["label"], ["store_id"], params, 0, levels, levels
    )
    units = contract.predict(model, frame)
    assert np.array_equal(units, demand_model.predict(model, x, levels))
    for store, level in (("small", 1.0), ("big", 1_000.0)):
        mine = frame["store_id"] == store
        expected = level * shape
        assert units[mine.to_numpy()] == pytest.approx(expected, rel=0.25 if level < 10 else 0.05)
    # the model's own output is the shape, on one scale for both series
    raw = model.predict(x)
    assert raw.max() < 3


def test_refit_scales_as_the_fit_does():
    frame = pd.DataFrame(
        {
            "store_id": ["a", "b"] * 50,
            "units_mean_28": [2.0, 200.0] * 50,
            "x": np.arange(100) // 2 % 2,
            # x = 1 sells 1.5 times the level, in either series
            "label": np.where(np.arange(100) // 2 % 2 == 1, 1.5, 1.0) * ([2.0, 200.0] * 50),
        }
    )
    contract = dataclasses.replace(
        _contract(), extra={"target_scale": "units_mean_28", "target_scale_floor": "1.0"}
    )
    x = contract.model_frame(frame)
    levels = contract.levels(frame["units_mean_28"])
    settings = get_settings(learning_rate=0.3, depth=2)
    params = {**demand_model.params(settings, "CPU"), "thread_count": 1}
    model = demand_model.refit(x, frame["label"], ["store_id"], params, 100, 0, levels)
    assert contract.predict(model, frame) == pytest.approx(frame["label"].to_numpy(), rel=0.05)
