"""Forecast accuracy: MAE, RMSE, WAPE and bias, overall and by horizon and category."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

METRICS = ("mae", "rmse", "wape", "bias")


def scores(y_true, y_pred) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    total = float(np.abs(y_true).sum())
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        # WAPE: absolute error per unit sold; bias: over- (+) or under-forecast (−) share
        "wape": float(np.abs(y_true - y_pred).sum() / total) if total else float("nan"),
        "bias": float((y_pred - y_true).sum() / total) if total else float("nan"),
    }


def breakdown(rows: pd.DataFrame, predictions: dict[str, np.ndarray], by: str) -> pd.DataFrame:
    """One row per (predictor, value of ``by``) with every metric."""
    records = []
    for predictor, y_pred in predictions.items():
        frame = rows.assign(_pred=y_pred)
        for value, group in frame.groupby(by, sort=True):
            records.append(
                {"predictor": predictor, by: value, **scores(group["label"], group["_pred"])}
            )
    return pd.DataFrame(records)


def metric_key(predictor: str, metric: str, suffix: str = "") -> str:
    """MLflow key: ``wape`` for the model, ``seasonal_naive_wape`` for a baseline."""
    name = metric if predictor == "model" else f"{predictor}_{metric}"
    return f"{name}_{suffix}" if suffix else name


def poisson_floor_wape(y_true, expected) -> float:
    """WAPE a perfect forecast would still have if sales were Poisson around ``expected``.

    The error of even the true mean cannot go below the noise of the counts:
    E|Y - median(Y)| for Y ~ Poisson(mean). Set beside the model's WAPE it says
    how much is left to learn.
    """
    from scipy.stats import poisson

    mean = np.clip(np.asarray(expected, dtype=float), 1e-9, None)
    top = int(np.ceil(mean.max() + 10 * np.sqrt(mean.max()) + 10))
    k = np.arange(top + 1)[None, :]
    pmf = poisson.pmf(k, mean[:, None])
    median = poisson.median(mean)[:, None]
    expected_error = (pmf * np.abs(k - median)).sum(axis=1)
    total = float(np.abs(np.asarray(y_true, dtype=float)).sum())
    return float(expected_error.sum() / total) if total else float("nan")
