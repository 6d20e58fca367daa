"""The CatBoost input for a batch of online vectors, without a pandas frame per request.

It applies the same rules as :meth:`FeatureContract.model_frame` (categorical →
str or the missing sentinel, numeric → float or NaN, the contract's order); the
tests check both give the same predictions. Pandas costs ~15 ms a request even
for one row; this costs ~0.5 ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from demand.contract import MISSING_CATEGORY, FeatureContract


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):  # as pd.to_numeric(errors="coerce")
        return math.nan


def _category(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_CATEGORY
    return str(value)


def model_input(contract: FeatureContract, columns: dict[str, Sequence[Any]], rows: int):
    """A catboost.Pool of ``rows`` rows from feature name → values, in contract order."""
    from catboost import Pool

    data = np.empty((rows, len(contract.features)), dtype=object)
    categorical = set(contract.categorical)
    for j, name in enumerate(contract.features):
        values = columns[name]
        if name in categorical:
            data[:, j] = [_category(v) for v in values]
        else:
            data[:, j] = [_number(v) for v in values]
    indices = [contract.features.index(name) for name in contract.categorical]
    return Pool(data, cat_features=indices, feature_names=list(contract.features))


def predict_units(
    model, contract: FeatureContract, columns: dict[str, Sequence[Any]], rows: int, pool=None
):
    """Units per row, clipped at 0 as in training's backtest (times each row's level for a
    model fitted on scaled units: the contract's ``units``), a pair too new for the model
    given its baseline's forecast (the contract's short-history rule, whose columns
    ``columns`` then holds too): what :meth:`FeatureContract.predict` gives. ``pool``:
    the rows' model input when the caller built it already (the quantile model reads it
    too)."""
    if rows == 0:
        return np.empty(0)
    predicted = model.predict(pool if pool is not None else model_input(contract, columns, rows))
    scale = contract.target_scale
    units = contract.units(predicted, columns[scale] if scale else [None] * rows)
    rule = contract.short_history_rule
    if rule is None:
        return units
    return contract.with_fallback(units, columns[rule.age_feature], columns[rule.feature])


def inputs(contract: FeatureContract) -> list[str]:
    """The columns :func:`predict_units` reads: the model's and its short-history rule's."""
    rule = contract.short_history_rule
    return list(dict.fromkeys(contract.features + (rule.columns if rule else [])))


def short_history(loaded, vectors) -> list[bool]:
    """For each looked-up key, whether the contract's rule forecast it by the baseline (a
    key without an origin: False, it has no forecast). All False without a rule."""
    rule = loaded.contract.short_history_rule
    if rule is None:
        return [False] * len(vectors.origin)
    short = loaded.contract.short_history(vectors.columns[rule.age_feature])
    return [bool(s) and o is not None for s, o in zip(short, vectors.origin, strict=True)]


def score(
    loaded,
    store_ids: Sequence[str],
    product_ids: Sequence[str],
    vectors,
    planned: dict[str, Sequence[Any]] | None = None,
) -> list[float | None]:
    """Units for each looked-up key in order; None where the online store knows no origin.

    ``loaded`` is the serving bundle (model and contract), ``vectors`` what its
    lookup fetched for these keys, ``planned`` request-time values of contract
    features (a planned price, a promotion): where an item gives one it replaces
    the plan read from the store (``planned_promotions``), where it gives None the
    plan stands. A pair too new at its origin gets the baseline of the contract's
    short-history rule. The service and the batch forecasts both score
    through here, so a published forecast is what ``/forecast`` answers.
    """
    return score_all(loaded, store_ids, product_ids, vectors, planned, quantiles=False)[0]


def score_all(
    loaded,
    store_ids: Sequence[str],
    product_ids: Sequence[str],
    vectors,
    planned: dict[str, Sequence[Any]] | None = None,
    quantiles: bool = True,
) -> tuple[list[float | None], list[list[float] | None] | None]:
    """Units as :func:`score`, and each item's quantiles in units at the contract's levels
    (increasing; None where there are no units). The second is None for a version without
    a quantile model, or when ``quantiles`` is false. One CatBoost input serves both models."""
    known = [i for i, origin in enumerate(vectors.origin) if origin is not None]
    columns = {"store_id": store_ids, "product_id": product_ids, **vectors.columns}
    for name, values in (planned or {}).items():
        # a client's planned value replaces the plan the store holds; None keeps the plan
        held = columns.get(name, [None] * len(values))
        columns[name] = [v if v is not None else h for v, h in zip(values, held, strict=True)]
    contract = loaded.contract
    subset = {name: [columns[name][i] for i in known] for name in inputs(contract)}
    quantile_model = getattr(loaded, "quantile_model", None) if quantiles else None
    answers: list[float | None] = [None] * len(store_ids)
    bands: list[list[float] | None] | None = (
        None if quantile_model is None else [None] * len(store_ids)
    )
    if not known:
        return answers, bands
    pool = model_input(contract, subset, len(known))
    units = predict_units(loaded.model, contract, subset, len(known), pool).tolist()
    for i, value in zip(known, units, strict=True):
        answers[i] = value
    if bands is not None:
        horizons = [vectors.horizon[i] for i in known]
        raw = quantile_model.predict(pool)
        for i, row in zip(known, quantile_rows(contract, raw, subset, horizons), strict=True):
            bands[i] = row
    return answers, bands


def quantile_rows(contract: FeatureContract, raw, columns, horizons) -> list[list[float]]:
    """Quantiles in units per row from the quantile model's ``raw`` output, a pair too new
    for the model given its baseline's interval (the contract's short-history rule, whose
    columns ``columns`` holds): what training's backtest judged."""
    return contract.quantile_forecast(raw, columns, horizons).tolist()


def lead_time_quantiles(contract, per_period, first_horizon: int, wanted) -> np.ndarray:
    """Quantiles at ``wanted`` (keys × wanted) of each key's total over the periods of
    ``per_period`` (keys × periods × levels: its quantiles per period, the first period
    ``first_horizon`` after the origin): sample paths with the horizons' dependence the
    version was trained with (demand.quantiles), never a sum of per-period quantiles."""
    from demand import quantiles as qmath

    periods = per_period.shape[1]
    start = first_horizon - 1
    correlation = contract.dependence[start : start + periods, start : start + periods]
    return qmath.lead_time_quantiles(
        contract.quantiles, per_period, correlation, wanted, contract.quantile_counts
    )
