"""The short-history rule: a pair too new at the origin is forecast by a baseline.

A pair fewer than DEMAND_MIN_HISTORY_PERIODS periods past its first sale at the origin
(7 days, 4 weeks by default; or with no sale yet) has lags and windows the model saw
little of. Its forecast is a baseline known at the origin instead: the one of the grain's
candidates (the moving average, the last period) with the lowest WAPE on the validation
window's short-history rows, never the backtest's. Each candidate is a column of the
sales feature table equal to that baseline (``training.baselines``): ``units_mean_4`` is
``moving_average_4w``, ``units_lag_1`` is ``naive_1w``, so serving reads it online like
any feature. The choice goes into the model's contract (``demand.contract.ShortHistory``),
which every scorer applies: the backtest, the gates, batch forecasts and /forecast.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from demand.settings import Settings
from training.metrics import scores

# the periods a pair needs past its first sale before the model forecasts it: a full short
# window (its level features no longer average fewer periods than they say)
DEFAULT_MIN_PERIODS = {"day": 7, "week": 4}
# per grain: baseline name (as its metrics are logged) → the feature equal to its forecast,
# the preferred first (ties go to it)
CANDIDATES = {
    "day": {"moving_average_28d": "units_mean_28", "naive_1d": "units_lag_1"},
    "week": {"moving_average_4w": "units_mean_4", "naive_1w": "units_lag_1"},
}
# the pair's age at the origin, per grain (features.transforms.since_first_sale_sql)
AGE_FEATURE = {"day": "days_since_first_sale", "week": "weeks_since_first_sale"}


def min_periods(settings: Settings, grain: str) -> int:
    """DEMAND_MIN_HISTORY_PERIODS, else the grain's default."""
    if settings.min_history_periods is not None:
        return settings.min_history_periods
    return DEFAULT_MIN_PERIODS[grain]


def is_short(ages: pd.Series, minimum: int) -> np.ndarray:
    """Rows fewer than ``minimum`` periods past the first sale, or with none yet."""
    return ~(pd.to_numeric(ages, errors="coerce").to_numpy(dtype=np.float64) >= minimum)


def choose(
    settings: Settings, frame: pd.DataFrame, valid: pd.Series, grain: str
) -> tuple[dict[str, str], dict[str, float]]:
    """The contract's rule (its ``extra`` entries) and each candidate's WAPE on the validation
    window's short-history rows (all its rows when it has none). Empty when the rule is off
    or the feature tables lack the pair's age (built before it)."""
    minimum = min_periods(settings, grain)
    age = AGE_FEATURE[grain]
    candidates = {n: f for n, f in CANDIDATES[grain].items() if f in frame.columns}
    if minimum <= 0 or age not in frame.columns or not candidates:
        return {}, {}
    rows = frame[valid]
    short = is_short(rows[age], minimum)
    judged = rows[short] if short.any() else rows
    wapes = {
        name: scores(judged["label"], judged[feature].fillna(0.0).clip(lower=0))["wape"]
        for name, feature in candidates.items()
    }
    best = min(candidates, key=lambda n: wapes[n] if not math.isnan(wapes[n]) else math.inf)
    rule = {
        "short_history_min_periods": str(minimum),
        "short_history_baseline": best,
        "short_history_feature": candidates[best],
        "short_history_age": age,
    }
    return rule, wapes
