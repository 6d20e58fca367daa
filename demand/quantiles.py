"""Quantile forecasts as numbers: levels, support, the quantile function, lead-time totals.

Training (the backtest, calibration) and serving (/forecast, batch) both turn a model's
quantiles into units and lead-time totals here, so a published quantile is what the
backtest judged. Pure numpy; no model, no store.

A row's forecast distribution is known only at a few levels (0.1, 0.5, 0.9). Between
them the quantile function is linear; below the lowest it falls linearly to zero at
level 0 (sales are never negative); above the highest it continues as an exponential
tail whose density matches the last segment's (a linear tail would bound the demand).

Lead-time demand is the quantile of a *sum*: adding per-period P90s overstates it (the
periods are not all high at once). Sample paths draw each period's level from a Gaussian
copula whose correlation between horizons was estimated on the validation window's
residuals, map each through that period's quantile function and add them up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

# sample paths per key for a lead-time total: the P90 of 1,000 draws moves ~1 % between seeds
PATHS = 1000
SEED = 0


def parse_levels(text: str) -> tuple[float, ...]:
    """``"0.1,0.5,0.9"`` → (0.1, 0.5, 0.9), sorted; "" → (). ValueError saying what is wrong."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    levels = []
    for part in parts:
        try:
            level = float(part)
        except ValueError:
            raise ValueError(
                f"{part!r} is not a number; expected levels such as 0.1,0.5,0.9"
            ) from None
        if not 0 < level < 1:
            raise ValueError(f"{part} is outside (0, 1); a quantile level is a probability")
        levels.append(level)
    duplicated = sorted({label(v) for v in levels if levels.count(v) > 1})
    if duplicated:
        raise ValueError(f"{', '.join(duplicated)} given more than once")
    return tuple(sorted(levels))


def label(level: float) -> str:
    """The name of a level in answers, columns and metrics: 0.1 → "0.1"."""
    return f"{level:g}"


def column(level: float) -> str:
    """A table column for a level: 0.1 → ``units_p10``, 0.025 → ``units_p2.5``."""
    return f"units_p{level * 100:g}"


def central(levels: Sequence[float]) -> tuple[float, float] | None:
    """The central interval's levels: the lowest and the highest (None under two levels)."""
    return (min(levels), max(levels)) if len(levels) >= 2 else None


def support(values: np.ndarray, counts: bool) -> np.ndarray:
    """Quantiles as sales can be: never below zero; whole units for count data, zeros kept
    (a P10 of 1e-7 is a P10 of 0, and an interval that never reaches 0 misses every zero)."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0, None)
    return np.floor(values + 0.5) if counts else values


def non_crossing(values: np.ndarray) -> np.ndarray:
    """Each row's quantiles in increasing order (a multi-quantile model's can cross)."""
    return np.sort(np.asarray(values, dtype=np.float64), axis=-1)


def quantile_function(levels: Sequence[float], values: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each row's value at probability ``u`` (rows × draws), from its quantiles
    ``values`` (rows × levels) at ``levels``. See the module docstring for the tails."""
    q = np.asarray(levels, dtype=np.float64)
    v = non_crossing(values)
    u = np.asarray(u, dtype=np.float64)
    rows = v.shape[0]
    out = np.empty_like(u)
    # below the lowest level: linearly from 0 at u = 0
    low = u <= q[0]
    out[low] = (v[:, :1] * (u / q[0]))[low]
    for j in range(len(q) - 1):
        inside = (u > q[j]) & (u <= q[j + 1])
        share = (u - q[j]) / (q[j + 1] - q[j])
        out[inside] = (v[:, j : j + 1] + share * (v[:, j + 1 : j + 2] - v[:, j : j + 1]))[inside]
    high = u > q[-1]
    # the density at the top level, continued as an exponential tail (none with one level)
    scale = (1 - q[-1]) * (v[:, -1] - v[:, -2]) / (q[-1] - q[-2]) if len(q) >= 2 else np.zeros(rows)
    tail = v[:, -1:] + scale[:, None] * np.log((1 - q[-1]) / np.clip(1 - u, 1e-12, None))
    out[high] = tail[high]
    return out


def pit(levels: Sequence[float], values: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where each outcome falls in its row's distribution (the inverse of
    :func:`quantile_function`), by bisection; ties (a zero where P10 is 0) take the middle
    of the levels they span, so a mass of zeros does not look like a run of low draws."""
    y = np.asarray(y, dtype=np.float64)[:, None]
    lo = np.zeros_like(y)
    hi = np.ones_like(y)
    below = np.zeros_like(y)
    above = np.ones_like(y)
    for _ in range(30):  # the level of the first value ≥ y, and of the last ≤ y
        mid = (lo + hi) / 2
        at = quantile_function(levels, values, mid)
        lo, hi = np.where(at < y, mid, lo), np.where(at < y, hi, mid)
        mid2 = (below + above) / 2
        at2 = quantile_function(levels, values, mid2)
        below, above = np.where(at2 <= y, mid2, below), np.where(at2 <= y, above, mid2)
    return ((hi + below) / 2)[:, 0]


def dependence(z: np.ndarray) -> np.ndarray:
    """A correlation matrix (horizons × horizons) from normal scores ``z`` (one row per series
    and origin, NaN where a horizon is missing): pairwise, then made positive definite."""
    import pandas as pd

    horizons = z.shape[1]
    corr = pd.DataFrame(z).corr(min_periods=3).to_numpy()
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    values, vectors = np.linalg.eigh((corr + corr.T) / 2)
    fixed = vectors @ np.diag(np.clip(values, 1e-6, None)) @ vectors.T
    d = np.sqrt(np.diag(fixed))
    return (fixed / np.outer(d, d)).reshape(horizons, horizons)


def lead_time_totals(
    levels: Sequence[float],
    per_period: np.ndarray,
    correlation: np.ndarray,
    paths: int = PATHS,
    seed: int = SEED,
) -> np.ndarray:
    """Simulated totals (keys × paths) of each key's next L periods: ``per_period`` holds
    the quantiles of each (keys × L × levels), ``correlation`` the L × L copula."""
    keys, periods, _ = per_period.shape
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(np.asarray(correlation)[:periods, :periods])
    # the same draws for every key: a key's answer does not depend on the keys beside it
    z = rng.standard_normal((paths, periods)) @ chol.T
    u = norm.cdf(z)  # paths × periods
    totals = np.zeros((keys, paths))
    for h in range(periods):
        draws = np.broadcast_to(u[:, h], (keys, paths))
        totals += quantile_function(levels, per_period[:, h, :], draws)
    return totals


def lead_time_quantiles(
    levels: Sequence[float],
    per_period: np.ndarray,
    correlation: np.ndarray,
    wanted: Sequence[float],
    counts: bool,
    chunk: int = 2000,
) -> np.ndarray:
    """Quantiles at ``wanted`` (keys × wanted) of each key's L-period total; whole units for
    counts, rounded up (an order-up-to level of 30.2 units is 31). Keys in chunks: memory
    stays at ``chunk`` × PATHS totals whatever the number of keys."""
    out = np.empty((per_period.shape[0], len(wanted)))
    for start in range(0, per_period.shape[0], chunk):
        totals = lead_time_totals(levels, per_period[start : start + chunk], correlation)
        out[start : start + chunk] = np.quantile(totals, wanted, axis=1).T
    return np.ceil(out - 1e-9) if counts else out
