"""Simple forecasts a model must beat, as scikit-learn estimators over the sales history.

Each is fitted on the sales history (units per store, product and period, ``date``
the period's first day) and predicts for rows that carry ``store_id``,
``product_id``, ``origin`` and ``target``: the same rows the model is scored on.
None looks past the origin. Seasons and windows count periods of the grain.

Each is named by its window, in periods of the grain (``d`` days, ``w`` weeks), and
its metrics are logged under that name (``moving_average_4w_wape``). Daily:
``seasonal_naive_7d`` (same weekday last week, else the 28-day moving average),
``moving_average_28d``, ``naive_1d`` (the origin day). Weekly: ``seasonal_naive_52w``
(the same week last year when the history has it, else naive), ``moving_average_4w``,
``naive_1w`` (last week). The gates compare the model with the best of them.

Versions trained before the names said their window logged ``seasonal_naive``,
``moving_average_28`` (a 4-week mean at the weekly grain) and ``naive``
(``registry.gates.LEGACY_BASELINES``: the two the gates then read).

Values are whatever the sales are in (units, kilograms, sales value): nothing here
depends on their size or on their being whole.
"""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin


def _series(history: pd.DataFrame) -> pd.Series:
    return history.set_index(["store_id", "product_id", "date"])["units"].sort_index()


class Naive(RegressorMixin, BaseEstimator):
    """Units of the origin period (yesterday, last week) for every horizon."""

    def fit(self, history: pd.DataFrame, y=None):
        self.units_ = _series(history)
        return self

    def predict(self, rows: pd.DataFrame):
        index = pd.MultiIndex.from_arrays([rows["store_id"], rows["product_id"], rows["origin"]])
        return self.units_.reindex(index).fillna(0.0).to_numpy()


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Units of the same period one season before the target (a week of days, a year of
    weeks), known when that period is at or before the origin.

    Where it is after the origin (h > season) or before the pair's history, the
    fallback stands in: the moving average (daily) or naive (weekly).
    """

    def __init__(
        self,
        season: int = 7,
        fallback_window: int = 28,
        period_days: int = 1,
        fallback: str = "moving_average",
    ):
        self.season = season
        self.fallback_window = fallback_window
        self.period_days = period_days
        self.fallback = fallback

    def fit(self, history: pd.DataFrame, y=None):
        self.units_ = _series(history)
        self.fallback_ = (
            Naive() if self.fallback == "naive" else MovingAverage(self.fallback_window)
        ).fit(history)
        return self

    def predict(self, rows: pd.DataFrame):
        day = rows["target"] - pd.Timedelta(days=self.season * self.period_days)
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
    """Mean units per period over the ``window`` periods up to and including the origin."""

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


def for_grain(grain: str) -> dict[str, BaseEstimator]:
    """The baselines of a grain, by the names their metrics are logged under; the
    seasonal naive first (the plots draw it)."""
    if grain == "week":
        return {
            "seasonal_naive_52w": SeasonalNaive(52, period_days=7, fallback="naive"),
            "moving_average_4w": MovingAverage(4),
            "naive_1w": Naive(),
        }
    return {
        "seasonal_naive_7d": SeasonalNaive(7),
        "moving_average_28d": MovingAverage(28),
        "naive_1d": Naive(),
    }
