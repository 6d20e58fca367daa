"""Forecast accuracy: MAE, RMSE, WAPE and bias, overall and by horizon and category."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import poisson
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

METRICS = ("mae", "rmse", "wape", "bias")


def scores(y_true, y_pred) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    error = y_pred - y_true
    return scores_from_sums(
        rows=len(y_true),
        # scikit-learn's own checks (shapes, NaN, infinities) and means
        absolute_error=float(mean_absolute_error(y_true, y_pred)) * len(y_true),
        squared_error=float(root_mean_squared_error(y_true, y_pred)) ** 2 * len(y_true),
        error=float(error.sum()),
        absolute_actual=float(np.abs(y_true).sum()),
    )


# the sums every metric is a function of: what a database aggregates per group (the live
# accuracy of monitoring/accuracy.py sums ~12 M ledger rows in DuckDB) before this
SUMS = ("rows", "absolute_error", "squared_error", "error", "absolute_actual")


def scores_from_sums(
    rows: int, absolute_error: float, squared_error: float, error: float, absolute_actual: float
) -> dict[str, float]:
    """MAE, RMSE, WAPE and bias from a group's sums (``SUMS``), the one place they are defined."""
    nan = float("nan")
    return {
        "mae": absolute_error / rows if rows else nan,
        "rmse": float(np.sqrt(squared_error / rows)) if rows else nan,
        # WAPE: absolute error per unit sold; bias: over- (+) or under-forecast (−) share
        "wape": absolute_error / absolute_actual if absolute_actual else nan,
        "bias": error / absolute_actual if absolute_actual else nan,
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


# the Poisson floor's note when it does not apply (the training report prints it)
NOT_COUNTS = (
    "not applicable: the labels are not whole units (kilograms, sales value), and "
    "Poisson noise is a law of counts"
)


def are_counts(values) -> bool:
    """Whether every value is a whole, non-negative number: units sold, not kilograms or money."""
    values = np.asarray(values, dtype=float)
    return bool(np.all(np.isfinite(values) & (values >= 0) & (values == np.floor(values))))


def poisson_median(mean: np.ndarray) -> np.ndarray:
    """The median of Poisson(mean) per row: the smallest k with P(Y <= k) >= 1/2.

    scipy's ``poisson.median`` inverts the CDF by iteration (5 s per 100,000 rows at
    means near 10^5). The median lies in [mean - ln 2, mean + 1/3) (Choi 1994), so it
    is the first whole number of that range or the next: one CDF per row decides. The
    loops below only correct a rounding at the range's ends, and do not run on any
    mean tried (10^-9 to 10^7).
    """
    median = np.maximum(np.ceil(mean - np.log(2)), 0.0)
    median += poisson.cdf(median, mean) < 0.5
    while (low := (median > 0) & (poisson.cdf(median - 1, mean) >= 0.5)).any():
        median -= low
    while (high := poisson.cdf(median, mean) < 0.5).any():
        median += high
    return median


def poisson_absolute_error(mean) -> np.ndarray:
    """E|Y - median(Y)| for Y ~ Poisson(mean), per row, in closed form.

    With m the median, F the CDF and p the PMF, and k·p(k) = mean·p(k-1):
    E|Y - m| = (mean - m)·(1 - 2·F(m-1)) + 2·mean·p(m-1). Both terms are small
    (|mean - m| < 1, and the second is about sqrt(2·mean/π)), so nothing cancels at 10^7
    units; memory and time grow with the rows, never with the counts.
    """
    mean = np.clip(np.asarray(mean, dtype=float), 1e-9, None)
    median = poisson_median(mean)
    below = poisson.cdf(median - 1, mean)
    return (mean - median) * (1 - 2 * below) + 2 * mean * poisson.pmf(median - 1, mean)


def poisson_floor_wape(y_true, expected) -> float:
    """WAPE a perfect forecast would still have if sales were Poisson around ``expected``.

    The error of even the true mean cannot go below the noise of the counts:
    E|Y - median(Y)| for Y ~ Poisson(mean). Set beside the model's WAPE it says
    how much is left to learn. NaN where the labels are not counts (``NOT_COUNTS``):
    kilograms or sales value have no Poisson law in their own unit, and a floor in
    some guessed unit of count would be a number made up. Whole numbers are taken as
    counts: a sales value rounded to whole dollars gets a floor it should not have.
    """
    y_true = np.asarray(y_true, dtype=float)
    total = float(np.abs(y_true).sum())
    if not total or not are_counts(y_true):
        return float("nan")
    return float(poisson_absolute_error(expected).sum() / total)


def floor_note(y_true) -> str:
    """Why the floor is NaN for these labels, or "" when it is a number."""
    y_true = np.asarray(y_true, dtype=float)
    if not are_counts(y_true):
        return NOT_COUNTS
    if not np.abs(y_true).sum():
        return "not applicable: nothing was sold in the backtest"
    return ""


@dataclass(frozen=True)
class PairedDifference:
    """Challenger minus champion on the same rows, with a bootstrap interval.

    Both losses are ratios of sums over the rows (WAPE: Σ|error| / Σ|actual|; wQL:
    Σ pinball / Σ|actual|), so the difference is negative when the challenger is better.
    """

    metric: str
    champion: float
    challenger: float
    difference: float
    low: float
    high: float
    level: float
    draws: int
    groups: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def paired_difference(
    champion_loss,
    challenger_loss,
    scale,
    groups,
    *,
    metric: str = "wape",
    level: float = 0.9,
    draws: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """Compare two forecasts of the same rows by a block bootstrap of their loss ratio.

    ``champion_loss`` and ``challenger_loss`` are each row's loss (|error| for WAPE),
    ``scale`` each row's denominator (|actual|), ``groups`` the block each row belongs
    to. Rows of one block move together: a series' days (or one day's series) are
    correlated, and resampling rows one by one would give an interval far too narrow.
    The interval is the percentile interval of the difference over ``draws`` resamples
    of whole blocks. Memory grows with the blocks, never with rows × draws.
    """
    champion_loss = np.asarray(champion_loss, dtype=float)
    challenger_loss = np.asarray(challenger_loss, dtype=float)
    scale = np.abs(np.asarray(scale, dtype=float))
    if not (len(champion_loss) == len(challenger_loss) == len(scale) == len(groups)):
        raise ValueError("paired_difference: every argument needs one value per row")
    if not 0 < level < 1:
        raise ValueError(f"paired_difference: level must be in (0, 1), not {level}")
    codes, _ = pd.factorize(pd.Series(groups), sort=False)
    blocks = int(codes.max()) + 1 if len(codes) else 0
    per_block = np.zeros((3, blocks))
    for row, values in enumerate((champion_loss, challenger_loss, scale)):
        per_block[row] = np.bincount(codes, weights=values, minlength=blocks)
    total = per_block.sum(axis=1)
    if not blocks or total[2] <= 0:
        nan = float("nan")
        return PairedDifference(metric, nan, nan, nan, nan, nan, level, 0, blocks)
    champion, challenger = total[0] / total[2], total[1] / total[2]
    rng = np.random.default_rng(seed)
    differences = np.empty(draws)
    chunk = max(1, 4_000_000 // blocks)  # draws per chunk: bounded memory at any block count
    for start in range(0, draws, chunk):
        n = min(chunk, draws - start)
        weights = rng.multinomial(blocks, np.full(blocks, 1 / blocks), size=n).astype(float)
        sums = weights @ per_block.T  # (n, 3)
        with np.errstate(invalid="ignore", divide="ignore"):
            differences[start : start + n] = (sums[:, 1] - sums[:, 0]) / sums[:, 2]
    differences = differences[np.isfinite(differences)]
    tail = (1 - level) / 2
    low, high = np.quantile(differences, [tail, 1 - tail]) if len(differences) else (np.nan,) * 2
    return PairedDifference(
        metric=metric,
        champion=float(champion),
        challenger=float(challenger),
        difference=float(challenger - champion),
        low=float(low),
        high=float(high),
        level=level,
        draws=len(differences),
        groups=blocks,
    )


# -- quantile forecasts: weighted quantile loss and coverage ------------------------------


def level_key(level: float) -> str:
    """A level in metric names: 0.1 → ``p10`` (MLflow keys: ``wql_p10``, ``coverage_p90``)."""
    return f"p{level * 100:g}"


def pinball_loss(y_true, quantiles, levels) -> np.ndarray:
    """Each row's pinball loss at each level (rows × levels): the term every wQL sums (the
    live ledger keeps it per row and level, monitoring/ledger.py)."""
    y = np.asarray(y_true, dtype=float)[:, None]
    q = np.asarray(quantiles, dtype=float).reshape(len(y), -1)
    tau = np.asarray(levels, dtype=float)[None, :]
    return np.maximum(tau * (y - q), (tau - 1) * (y - q))


def pinball(y_true, quantiles, levels) -> np.ndarray:
    """Each row's pinball loss summed over the levels, times 2 / the number of levels: summed
    over rows and divided by Σ|actual| it is the mean wQL, so :func:`paired_difference` can
    compare two quantile forecasts row by row as it compares WAPEs."""
    return 2 * pinball_loss(y_true, quantiles, levels).sum(axis=1) / len(levels)


def quantile_scores(y_true, quantiles, levels) -> dict[str, float]:
    """wQL per level (2 Σ pinball / Σ|actual|, as Amazon Forecast scores it) and their mean;
    the coverage of each level (the share of actuals at or below it) and of the central
    interval (lowest to highest level, ends included)."""
    y = np.asarray(y_true, dtype=float)
    q = np.asarray(quantiles, dtype=float).reshape(len(y), -1)
    loss = pinball_loss(y, q, levels)
    return quantile_scores_from_sums(
        levels,
        rows=len(y),
        absolute_actual=float(np.abs(y).sum()),
        pinball=[float(loss[:, j].sum()) for j in range(len(levels))],
        below=[int((y <= q[:, j]).sum()) for j in range(len(levels))],
        inside=int(((q[:, 0] <= y) & (y <= q[:, -1])).sum()) if len(levels) >= 2 else None,
    )


def quantile_scores_from_sums(
    levels, rows: int, absolute_actual: float, pinball, below, inside: int | None = None
) -> dict[str, float]:
    """:func:`quantile_scores` from a group's sums, the one place they are defined: per level
    Σ pinball loss and the count of actuals at or below the quantile, the count inside the
    central interval (None under two levels), the rows and Σ|actual|. A database sums them
    per group (the live ledger's ~12 M rows, as ``SUMS`` for WAPE) before this."""
    nan = float("nan")
    out: dict[str, float] = {}
    for level, loss, count in zip(levels, pinball, below, strict=True):
        out[f"wql_{level_key(level)}"] = (
            float(2 * loss / absolute_actual) if absolute_actual else nan
        )
        out[f"coverage_{level_key(level)}"] = float(count / rows) if rows else nan
    out["wql"] = float(np.mean([out[f"wql_{level_key(v)}"] for v in levels]))
    if len(levels) >= 2:
        out["interval_coverage"] = float(inside / rows) if rows and inside is not None else nan
    return out


def quantile_breakdown(
    rows: pd.DataFrame, predictions: dict[str, np.ndarray], levels, by: str
) -> pd.DataFrame:
    """One row per (predictor, value of ``by``) with every quantile score."""
    records = []
    for predictor, q in predictions.items():
        q = np.asarray(q, dtype=float)
        for value, index in rows.groupby(by, sort=True).indices.items():
            y = rows["label"].to_numpy()[index]
            records.append(
                {"predictor": predictor, by: value, **quantile_scores(y, q[index], levels)}
            )
    return pd.DataFrame(records)
