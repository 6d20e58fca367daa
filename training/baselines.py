"""Simple forecasts a model must beat, as scikit-learn estimators over the sales history.

Both are fitted on the daily sales history and predict for rows that carry
``store_id``, ``product_id``, ``origin`` and ``target``: the same rows the model
is scored on. Neither looks past the origin.
"""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin


def _series(history: pd.DataFrame) -> pd.Series:
    return history.set_index(["store_id", "product_id", "date"])["units"].sort_index()


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Units of the same weekday in the week before the target day (known for h ≤ 7).

    Where that day is after the origin (h > season) or before the pair's history,
    the moving average stands in.
    """

    def __init__(self, season: int = 7, fallback_window: int = 28):
        self.season = season
        self.fallback_window = fallback_window

    def fit(self, history: pd.DataFrame, y=None):
        self.units_ = _series(history)
        self.fallback_ = MovingAverage(self.fallback_window).fit(history)
        return self

    def predict(self, rows: pd.DataFrame):
        day = rows["target"] - pd.Timedelta(days=self.season)
        usable = day <= rows["origin"]
        index = pd.MultiIndex.from_arrays([rows["store_id"], rows["product_id"], day])
        values = self.units_.reindex(index).to_numpy()
        fallback = self.fallback_.predict(rows)
        return (
            pd.Series(values, index=rows.index)
            .where(usable.to_numpy())
            .fillna(pd.Series(fallback, index=rows.index))
            .to_numpy()
        )


class MovingAverage(RegressorMixin, BaseEstimator):
    """Mean daily units over the ``window`` days up to and including the origin."""

    def __init__(self, window: int = 28):
        self.window = window

    def fit(self, history: pd.DataFrame, y=None):
        units = _series(history)
        self.means_ = units.groupby(level=[0, 1], group_keys=False).apply(
            lambda s: s.rolling(self.window, min_periods=1).mean()
        )
        return self

    def predict(self, rows: pd.DataFrame):
        index = pd.MultiIndex.from_arrays([rows["store_id"], rows["product_id"], rows["origin"]])
        return self.means_.reindex(index).fillna(0.0).to_numpy()
