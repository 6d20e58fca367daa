"""The demand model: a CatBoostRegressor with native categorical features."""

from __future__ import annotations

import pandas as pd
from catboost import CatBoostRegressor, Pool

from demand.settings import Settings


def params(settings: Settings, task_type: str) -> dict:
    """CatBoost parameters, with the ones whose CPU and GPU defaults differ pinned.

    border_count (CPU 254, GPU 128), bootstrap_type (MVS vs Bayesian) and
    boosting_type are fixed so a model trained on either device is the same kind
    of model, and the device is recorded with it.
    """
    return {
        "loss_function": settings.loss,
        # early stopping watches the loss itself: MAE would stop a count model at tree 0,
        # since the error of a mean forecast rises before the model learns the spread
        "iterations": settings.iterations,
        "learning_rate": settings.learning_rate,
        "depth": settings.depth,
        "border_count": 128,
        "bootstrap_type": "Bernoulli",
        "subsample": 0.8,
        "boosting_type": "Plain",
        "random_seed": settings.seed,
        "task_type": task_type,
        "od_type": "Iter",
        "od_wait": 60,
        "allow_writing_files": False,
    }


def fit(
    train_x: pd.DataFrame,
    train_y: pd.Series,
    valid_x: pd.DataFrame,
    valid_y: pd.Series,
    categorical: list[str],
    model_params: dict,
    verbose: int = 100,
) -> CatBoostRegressor:
    """Fit with early stopping on the validation window; keeps the best iteration."""
    model = CatBoostRegressor(**model_params)
    model.fit(
        Pool(train_x, train_y, cat_features=categorical),
        eval_set=Pool(valid_x, valid_y, cat_features=categorical),
        use_best_model=True,
        verbose=verbose,
    )
    return model


def refit(
    x: pd.DataFrame,
    y: pd.Series,
    categorical: list[str],
    model_params: dict,
    trees: int,
    verbose: int = 100,
) -> CatBoostRegressor:
    """Fit exactly ``trees`` trees on all of ``x``: no eval set, no early stopping.

    The number of trees was chosen by early stopping on the validation window;
    the rows that window and the backtest held out are training rows here.
    """
    fixed = {k: v for k, v in model_params.items() if k not in ("od_type", "od_wait")}
    model = CatBoostRegressor(**{**fixed, "iterations": trees})
    model.fit(Pool(x, y, cat_features=categorical), verbose=verbose)
    return model


def predict(model: CatBoostRegressor, x: pd.DataFrame):
    """Units (CatBoostRegressor returns the expected value for Poisson/Tweedie), never < 0."""
    return model.predict(x).clip(min=0)
