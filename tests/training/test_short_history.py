"""The short-history rule: chosen on the validation window, recorded in the contract, applied
by every scorer (here the contract's predict and training's backtest helpers), absent in
versions trained before it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from demand.contract import FeatureContract
from demand.settings import get_settings
from training import quantiles, short_history, train


def _contract(**extra) -> FeatureContract:
    return FeatureContract(
        feast_project="p",
        feature_service="s",
        feature_views={},
        features=["store_id", "x"],
        dtypes={"store_id": "category", "x": "float"},
        categorical=["store_id"],
        entity_keys=["store_id", "product_id"],
        request_features=[],
        horizon=4,
        train_start="2024-01-01",
        train_end="2024-06-30",
        training_set_hash="h",
        device="CPU",
        grain="week",
        extra=extra,
    )


RULE = {
    "short_history_min_periods": "4",
    "short_history_baseline": "moving_average_4w",
    "short_history_feature": "units_mean_4",
    "short_history_age": "weeks_since_first_sale",
}


class _Model:
    """Stands in for CatBoost: 10 units a row."""

    def predict(self, frame):
        return np.full(len(frame), 10.0)


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": ["S1"] * 5,
            "x": [1.0] * 5,
            # new this week, 3 weeks old, exactly 4, a year, never sold yet
            "weeks_since_first_sale": [0.0, 3.0, 4.0, 52.0, None],
            "units_mean_4": [2.0, 5.0, 7.0, 9.0, None],
        }
    )


def test_a_pair_too_new_gets_the_baseline_named_in_the_contract():
    contract = _contract(**RULE)
    rule = contract.short_history_rule
    assert (rule.min_periods, rule.baseline) == (4, "moving_average_4w")
    assert rule.columns == ["weeks_since_first_sale", "units_mean_4"]
    rows = _rows()
    assert contract.short_history(rows["weeks_since_first_sale"]).tolist() == [
        True,
        True,
        False,
        False,
        True,  # no sale yet: no history at all
    ]
    # the baseline's value where short (its null: 0), the model's elsewhere
    assert contract.predict(_Model(), rows).tolist() == [2.0, 5.0, 10.0, 10.0, 0.0]
    # the rule survives MLflow's tags
    again = FeatureContract.from_tags(contract.to_tags())
    assert again.short_history_rule == rule


def test_a_version_without_the_rule_is_the_models_everywhere():
    rows = _rows()
    for contract in (_contract(), _contract(**{**RULE, "short_history_min_periods": "0"})):
        assert contract.short_history_rule is None
        assert not contract.short_history(rows["weeks_since_first_sale"]).any()
        assert contract.predict(_Model(), rows).tolist() == [10.0] * 5
        # an old version's frame needs no age column
        assert contract.predict(_Model(), rows[["store_id", "x"]]).tolist() == [10.0] * 5


def _validation_frame() -> pd.DataFrame:
    """Eight validation rows: four short (new pairs), where last week beats the 4-week mean,
    four long, where the mean wins (the choice must read the short rows)."""
    return pd.DataFrame(
        {
            "label": [4.0, 6.0, 8.0, 2.0, 5.0, 5.0, 5.0, 5.0],
            "weeks_since_first_sale": [0, 1, 2, None, 10, 20, 30, 40],
            "units_lag_1": [4.0, 6.0, 7.0, 2.0, 0.0, 10.0, 0.0, 10.0],
            "units_mean_4": [1.0, 2.0, 3.0, None, 5.0, 5.0, 5.0, 5.0],
        }
    )


def test_the_baseline_is_the_best_on_the_validation_windows_short_rows():
    frame = _validation_frame()
    valid = pd.Series(True, index=frame.index)
    rule, wapes = short_history.choose(get_settings(), frame, valid, "week")
    assert rule == {
        "short_history_min_periods": "4",
        "short_history_baseline": "naive_1w",
        "short_history_feature": "units_lag_1",
        "short_history_age": "weeks_since_first_sale",
    }
    assert wapes["naive_1w"] == pytest.approx(1 / 20)
    assert wapes["moving_average_4w"] == pytest.approx(14 / 20)
    # with no short row in the window, all its rows judge: the mean wins there
    long = frame.assign(weeks_since_first_sale=50)
    rule, _ = short_history.choose(get_settings(), long, valid, "week")
    assert rule["short_history_baseline"] == "moving_average_4w"


def test_the_minimum_is_a_setting_per_grain_and_zero_turns_it_off():
    frame = _validation_frame()
    valid = pd.Series(True, index=frame.index)
    assert short_history.min_periods(get_settings(), "week") == 4
    assert short_history.min_periods(get_settings(), "day") == 7
    settings = get_settings(min_history_periods=13)
    assert short_history.choose(settings, frame, valid, "week")[0]["short_history_min_periods"] == (
        "13"
    )
    assert short_history.choose(get_settings(min_history_periods=0), frame, valid, "week") == (
        {},
        {},
    )
    # feature tables built before the pair's age: no rule
    old = frame.drop(columns="weeks_since_first_sale")
    assert short_history.choose(get_settings(), old, valid, "week") == ({}, {})


def test_the_backtest_counts_the_rows_that_fell_back():
    contract = _contract(**RULE)
    rows = _rows()
    test = pd.Series([False, True, True, True, True])
    valid = ~test
    split = train.Split(
        train=pd.Series(False, index=rows.index),
        valid=valid,
        test=test,
        cutoff=pd.Timestamp("2024-06-01"),
        valid_start=pd.Timestamp("2024-05-01"),
        refit=pd.Series(True, index=rows.index),
    )
    metrics = train.short_history_metrics(contract, rows, split, {"naive_1w": 0.5})
    assert metrics["short_history_rows"] == 2  # 3 weeks old and never sold
    assert metrics["short_history_share"] == 0.5
    assert metrics["validation_short_history_rows"] == 1
    assert metrics["validation_short_history_naive_1w_wape"] == 0.5
    units = train.with_short_history(contract, np.full(5, 10.0), rows)
    assert units.tolist() == [2.0, 5.0, 10.0, 10.0, 0.0]
    assert train.short_history_metrics(_contract(), rows, split, {}) == {}
    # the model alone against the baseline on the backtest rows that fell back
    test = rows.assign(label=[1.0, 5.0, 1.0, 1.0, 10.0])
    versus = train.short_history_backtest(contract, test, np.full(5, 10.0), units)
    assert versus["short_history_model_wape"] == pytest.approx((9 + 5 + 0) / 16)
    assert versus["short_history_baseline_wape"] == pytest.approx((1 + 0 + 10) / 16)


QUANTILES = {"quantiles": "0.1,0.5,0.9", "quantile_counts": "true"}


def test_a_short_row_gets_its_baselines_interval_and_the_others_the_models():
    interval = {"1": [-3.0, -0.5, 2.4], "2": [-1.0, 0.0, 6.5], "3": [0, 0, 0], "4": [0, 0, 0]}
    contract = _contract(
        **RULE, **QUANTILES, short_history_residuals=json.dumps(interval, sort_keys=True)
    )
    assert contract.short_history_interval[2] == [-1.0, 0.0, 6.5]
    rows = _rows()  # short: rows 0, 1, 4 (baselines 2, 5, null)
    model = np.array([[7.0, 9.0, 12.0]] * 5)
    horizons = [1, 2, 1, 2, 2]
    got = contract.with_fallback_quantiles(
        model, rows["weeks_since_first_sale"], rows["units_mean_4"], horizons
    )
    assert got.tolist() == [
        [0.0, 2.0, 4.0],  # 2 + (-3, -0.5, 2.4): -1 is 0, 1.5 rounds half up to 2, 4.4 to 4
        [4.0, 5.0, 12.0],  # 5 + (-1, 0, 6.5): 11.5 is 12
        [7.0, 9.0, 12.0],
        [7.0, 9.0, 12.0],
        [0.0, 0.0, 7.0],  # no sale yet: the baseline is 0
    ]
    # fractional units keep their fractions; still ≥ 0
    fractional = _contract(
        **RULE,
        **{**QUANTILES, "quantile_counts": "false"},
        short_history_residuals=json.dumps(interval),
    )
    got = fractional.with_fallback_quantiles(
        model, rows["weeks_since_first_sale"], rows["units_mean_4"], horizons
    )
    assert got[0].tolist() == [0.0, 1.5, 4.4]
    # a version before the interval (or without the rule) keeps the model's everywhere
    for old in (_contract(**RULE, **QUANTILES), _contract(**QUANTILES)):
        assert old.short_history_interval is None
        same = old.with_fallback_quantiles(
            model, rows["weeks_since_first_sale"], rows["units_mean_4"], horizons
        )
        assert same.tolist() == model.tolist()


def test_the_interval_reads_the_short_rows_residuals_per_horizon_when_there_are_enough():
    """Residuals of the rule's baseline on the validation window, per horizon; a horizon
    with too few rows takes its population pooled; too few short rows: all rows."""
    rng = np.random.default_rng(3)
    contract = _contract(**RULE, **QUANTILES)

    def rows(count, age, horizon, spread):
        baseline = rng.integers(0, 10, count).astype(float)
        return pd.DataFrame(
            {
                "horizon": horizon,
                "weeks_since_first_sale": age,
                "units_mean_4": baseline,
                "label": baseline + rng.normal(0, spread, count).round(),
            }
        )

    short = quantiles.SHORT_HISTORY_ROWS
    sparse = quantiles.HORIZON_ROWS - 1
    valid = pd.concat(
        [
            rows(500, 52.0, 1, 1.0),  # mature pairs: a narrow spread
            rows(short, 1.0, 1, 8.0),  # new pairs: a wide one
            rows(sparse, 1.0, 2, 8.0),  # too few at horizon 2: pooled
        ],
        ignore_index=True,
    )
    levels = (0.1, 0.5, 0.9)
    table = json.loads(
        quantiles.short_history_residuals(contract, valid, levels, 4)["short_history_residuals"]
    )
    assert sorted(table) == ["1", "2", "3", "4"]  # every horizon the model forecasts
    residual = valid["label"] - valid["units_mean_4"]
    new = valid["weeks_since_first_sale"] < 4
    at_1 = np.quantile(residual[new & (valid["horizon"] == 1)], levels)
    pooled = np.quantile(residual[new], levels)
    assert table["1"] == pytest.approx(at_1, abs=1e-4)
    assert table["2"] == table["3"] == table["4"] == pytest.approx(pooled, abs=1e-4)
    assert table["1"][2] - table["1"][0] > 15  # the new pairs' spread, not the mature ones'
    # with fewer short rows than the minimum, every row of the window
    few = valid.iloc[: 500 + short - 1]
    table = json.loads(
        quantiles.short_history_residuals(contract, few, levels, 4)["short_history_residuals"]
    )
    everything = few["label"] - few["units_mean_4"]
    assert table["1"] == pytest.approx(np.quantile(everything, levels), abs=1e-4)
    # no rule, no interval
    assert quantiles.short_history_residuals(_contract(**QUANTILES), valid, levels, 4) == {}


def test_the_gate_scores_the_quantiles_the_service_answers(monkeypatch):
    """The production gate's paired wQL reads a short row's quantiles from its baseline's
    interval, as /forecast and batch answer them, not the quantile model's."""
    import mlflow.catboost

    from registry import scoring
    from training.metrics import pinball

    interval = {str(h): [-3.0, -0.5, 2.4] for h in range(1, 5)}
    contract = _contract(
        **RULE,
        **QUANTILES,
        short_history_residuals=json.dumps(interval),
        backtest_quantile_model="backtest_quantile_model",
    )
    rows = _rows().assign(horizon=1, label=[2.0, 5.0, 7.0, 9.0, 0.0])
    raw = np.array([[7.0, 9.0, 12.0]] * 5)
    served = contract.quantile_forecast(raw, rows, rows["horizon"].to_numpy())
    assert served[0].tolist() == [0.0, 2.0, 4.0] and served[3].tolist() == [7.0, 9.0, 12.0]

    class _QuantileModel:
        def predict(self, frame):
            return raw[: len(frame)]

    # only the artifact store is stood in for: the gate's own scoring path runs
    monkeypatch.setattr(mlflow.catboost, "load_model", lambda uri: _QuantileModel())
    got = scoring.pinball_losses("m", "1", contract, rows)
    assert got.tolist() == pinball(rows["label"], served, contract.quantiles).tolist()
    assert got[0] != pinball(rows["label"], raw, contract.quantiles)[0]
