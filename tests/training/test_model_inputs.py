"""The training job holds the features once, as float32, and the same model comes out."""

import numpy as np
import pandas as pd
from catboost import CatBoostRegressor

from demand.contract import FeatureContract
from training.train import model_inputs, rows_of


def _contract() -> FeatureContract:
    return FeatureContract(
        feast_project="p",
        feature_service="s",
        feature_views={},
        features=["store_id", "category", "units_mean_28", "price"],
        dtypes={"store_id": "category", "category": "category", "units_mean_28": "float"},
        categorical=["store_id", "category"],
        entity_keys=["store_id", "product_id"],
        request_features=[],
        horizon=7,
        train_start="2024-01-01",
        train_end="2024-06-30",
        training_set_hash="h",
        device="CPU",
    )


def _frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "store_id": rng.choice(["S1", "S2", "S3"], n),
            "product_id": rng.choice(["P1", "P2"], n),
            "category": rng.choice(["soup", None], n),
            "origin": pd.Timestamp("2024-01-01"),
            "horizon": rng.integers(1, 8, n),
            "units_mean_28": rng.gamma(2.0, 3.0, n),
            "price": rng.uniform(1, 9, n).round(2) + 1e-9,  # needs float64 to be exact
            "label": rng.poisson(4.0, n).astype(float),
            "active": 1.0,  # a column neither the contract nor the model names stays
        }
    )


def test_the_frame_keeps_every_column_but_the_models_numbers():
    x, rest = model_inputs(_contract(), _frame())
    assert list(x.columns) == _contract().features
    assert x["units_mean_28"].dtype == np.float32 and x["store_id"].dtype == object
    assert list(rest.columns) == [
        "store_id",
        "product_id",
        "category",
        "origin",
        "horizon",
        "label",
        "active",
    ]


def test_float32_inputs_fit_and_predict_the_same_model():
    frame, contract = _frame(), _contract()
    x32, _ = model_inputs(contract, frame)
    x64 = contract.model_frame(frame)
    params = {
        "iterations": 30,
        "depth": 3,
        "random_seed": 0,
        "verbose": 0,
        "thread_count": 1,
        "allow_writing_files": False,
    }
    cats = contract.categorical
    one = CatBoostRegressor(**params).fit(x32, frame["label"], cat_features=cats)
    two = CatBoostRegressor(**params).fit(x64, frame["label"], cat_features=cats)
    np.testing.assert_array_equal(one.predict(x32), two.predict(x64))
    np.testing.assert_array_equal(one.predict(x64), one.predict(x32))


def test_rows_of_copies_nothing_when_every_row_is_kept():
    frame = _frame(10)
    assert rows_of(frame, pd.Series(True, index=frame.index)) is frame
    kept = rows_of(frame, frame["horizon"] > 3)
    assert len(kept) == (frame["horizon"] > 3).sum()
