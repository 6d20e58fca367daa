"""The demand model: a CatBoostRegressor with native categorical features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
        # one categorical feature per target statistic (chosen on the validation window):
        # combinations' statistics grew the fit's memory with its trees (docs/benchmarks.md)
        "max_ctr_complexity": settings.ctr_complexity,
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


# the level each row's units are divided by, per grain: the pair's mean over the last
# 28 days / 13 weeks, a feature known at the origin and served with the model
SCALE_FEATURES = {"day": "units_mean_28", "week": "units_mean_13"}


def scale_feature(settings: Settings, features: list[str], grain: str) -> str | None:
    """The feature the target is scaled by, or None: scaling off, or no such feature."""
    name = SCALE_FEATURES.get(grain)
    return name if settings.target_scale == "recent_mean" and name in features else None


def scale_floor(levels: pd.Series) -> float:
    """The smallest divisor: the 1st percentile of the positive levels of the training rows.

    In the data's own unit (units, kilograms, dollars), so a pair that sold nothing lately
    gets the level of the slowest sellers rather than a division by zero, whatever the unit.
    """
    positive = pd.to_numeric(levels, errors="coerce")
    positive = positive[positive > 0]
    return float(positive.quantile(0.01)) if len(positive) else 1.0


@dataclass(frozen=True)
class Scaled:
    """Labels divided by each row's level, weighted by it: the loss of a row is then its
    loss in units (a pair selling 100 a day counts 100× one selling 1), as WAPE counts,
    while trees see every series on one scale."""

    label: np.ndarray
    weight: np.ndarray | None

    @classmethod
    def of(cls, y: pd.Series, levels: np.ndarray | None) -> Scaled:
        y = np.asarray(y, dtype=np.float64)
        if levels is None:
            return cls(y, None)
        return cls(y / levels, levels)


def rows_of(frame, mask: pd.Series):
    """``frame[mask]`` (a frame or a series), without a copy when the mask keeps every row
    (the refit's usually does: every row whose target is a closed period)."""
    return frame if bool(mask.all()) else frame[mask]


def fit(
    train_x: pd.DataFrame,
    train_y: pd.Series,
    valid_x: pd.DataFrame,
    valid_y: pd.Series,
    categorical: list[str],
    model_params: dict,
    verbose: int = 100,
    train_levels: np.ndarray | None = None,
    valid_levels: np.ndarray | None = None,
) -> CatBoostRegressor:
    """Fit with early stopping on the validation window; keeps the best iteration.

    With levels, the model learns units / level (:class:`Scaled`); :func:`predict` and
    the contract's ``units`` multiply back.
    """
    train, valid = Scaled.of(train_y, train_levels), Scaled.of(valid_y, valid_levels)
    model = CatBoostRegressor(**model_params)
    model.fit(
        Pool(train_x, train.label, cat_features=categorical, weight=train.weight),
        eval_set=Pool(valid_x, valid.label, cat_features=categorical, weight=valid.weight),
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
    levels: np.ndarray | None = None,
) -> CatBoostRegressor:
    """Fit exactly ``trees`` trees on all of ``x``: no eval set, no early stopping.

    The number of trees was chosen by early stopping on the validation window;
    the rows that window and the backtest held out are training rows here.
    """
    fixed = {k: v for k, v in model_params.items() if k not in ("od_type", "od_wait")}
    model = CatBoostRegressor(**{**fixed, "iterations": trees})
    scaled = Scaled.of(y, levels)
    model.fit(
        Pool(x, scaled.label, cat_features=categorical, weight=scaled.weight), verbose=verbose
    )
    return model


def predict(model: CatBoostRegressor, x: pd.DataFrame, levels: np.ndarray | None = None):
    """Units (CatBoostRegressor returns the expected value for Poisson/Tweedie), never < 0;
    times each row's level for a model fitted on scaled units."""
    raw = model.predict(x).clip(min=0)
    return raw if levels is None else raw * levels
