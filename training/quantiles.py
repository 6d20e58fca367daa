"""Quantile forecasts beside the point model: fit, calibrate, backtest, log (DEMAND_QUANTILES).

One CatBoost ``MultiQuantile`` model gives every level in one predict. It runs on CPU only
(catboost issue 2783), so it is fitted on CPU whatever the point model's device, and the
device is recorded. Its quantiles can cross and, on count data, its P10 sits at 1e-7 where
sales are 0: the contract's ``quantile_units`` sorts them and puts them on the support
(whole units, zeros kept).

Calibration: per horizon and level, one offset added to the model's output, chosen so that
the share of actuals below the quantile is the level (conformal quantile calibration). For
whole units the share is read on the rounded quantiles; a lower level (< 0.5) counts the
actuals strictly below it, an upper one those at or below, the median half of those at it:
the central interval [P10, P90] then holds about 80 % of actuals, ends included, even where
most are 0 (a median, like any quantile of counts, has P(Y ≤ m) above 1/2, often far above
where most sales are 0).

The offsets are read on a rolling window: at each backtest origin, from the rows whose
actuals are known by then and whose targets lie in the last
DEMAND_QUANTILE_CALIBRATION_PERIODS (28 days, 4 weeks), the validation window's and the
backtest's own earlier ones (a horizon with fewer than ``WINDOW_ROWS`` rows there reaches
back to its latest ``WINDOW_ROWS``). That is what a nightly retrain does, and the only way
a season the validation window did not see reaches the quantiles: on the weekly example,
whose 8 validation weeks are August and September and whose backtest runs into December,
offsets from the validation window alone left the central interval at 0.749 (0.729 at 4
weeks ahead); on the rolling window it is 0.786 (0.755). The served model's offsets are the
window's at the end of the backtest, the latest known rows. Early stopping reads the
validation window, so offsets read there are a little optimistic; the backtest judges them.

The baseline interval is the seasonal naive plus, per horizon, the empirical quantiles of
its residuals on the validation window, on the same support. A short-history row (a pair
too new for the model, whose units are the short-history rule's baseline) gets the same
kind of interval around its units: the rule's baseline plus the empirical quantiles of
that baseline's residuals per horizon, on the validation window's short-history rows (all
its rows when they are too few), so its quantiles come from the forecast its units do.
Lead-time totals are judged on the backtest by their coverage (see :mod:`demand.quantiles`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from demand import memory
from demand import quantiles as qmath
from demand.contract import FeatureContract, baseline_units
from demand.settings import Settings
from training import baselines
from training import model as demand_model
from training.metrics import (
    are_counts,
    level_key,
    quantile_breakdown,
    quantile_scores,
    scores,
)

DEVICE = "CPU"  # MultiQuantile has no GPU implementation
MODEL_PATH, BACKTEST_MODEL_PATH = "quantile_model", "backtest_quantile_model"
BASELINE = "baseline_interval"  # the seasonal naive's empirical interval, in metric names
# the backtest's lead time, in periods (capped at the horizon): the 7-day total
LEAD_TIME = 7
CLOSE = 0.01  # shares within a point of the level count as calibrated (see offset)
# residuals an empirical P10/P90 is read from: under this many short-history rows in the
# validation window, their interval reads all its rows (a new pair's spread from a dozen
# residuals would be a guess); a horizon with fewer rows reads its population pooled
SHORT_HISTORY_ROWS = 200
HORIZON_ROWS = 30
# a rolling calibration window's rows per horizon at least (under it, it reaches back)
WINDOW_ROWS = 100
# the rolling window's length per grain, unless DEMAND_QUANTILE_CALIBRATION_PERIODS says
CALIBRATION_PERIODS = {"day": 28, "week": 4}


def model_params(settings: Settings, levels) -> dict:
    """The point model's parameters on CPU, with the MultiQuantile loss at ``levels``."""
    alpha = ",".join(qmath.label(v) for v in levels)
    return {
        **demand_model.params(settings, DEVICE),
        "loss_function": f"MultiQuantile:alpha={alpha}",
    }


def offset(raw, y, scale, level: float, counts: bool) -> float:
    """The offset (in the model's output) that puts ``level`` of the actuals at or below the
    quantile (for whole units: strictly below for a lower level, half the ties for the
    median); see the module docstring."""
    residual = y / scale - raw
    plain = float(np.quantile(residual, level))
    if not counts:
        return plain
    candidates = np.unique(np.quantile(residual, np.linspace(0, 1, 401)))
    gaps, losses = [], []
    for c in candidates:
        units = qmath.support((raw + c) * scale, counts=True)
        below, at = np.mean(y < units), np.mean(y == units)
        share = below + (0.0 if level < 0.5 else 1.0 if level > 0.5 else 0.5) * at
        gaps.append(abs(share - level))
        losses.append(np.maximum(level * (y - units), (level - 1) * (y - units)).sum())
    gaps, losses = np.array(gaps), np.array(losses)
    # whole units reach a share only in steps, and several offsets come near it (a median
    # of 0 everywhere is "calibrated" where half the actuals are 0): of those within a
    # point of the nearest, the one with the lowest pinball loss
    near = gaps <= gaps.min() + CLOSE
    return float(candidates[near][np.argmin(losses[near])])


def calibrate(raw, y, scale, horizons, levels, counts: bool) -> dict[str, list[float]]:
    """Horizon → each level's offset, from the validation window's rows."""
    offsets = {}
    for h in np.unique(horizons):
        rows = horizons == h
        offsets[str(int(h))] = [
            offset(raw[rows, j], y[rows], scale[rows], level, counts)
            for j, level in enumerate(levels)
        ]
    return offsets


def calibration_periods(settings: Settings, grain: str) -> int:
    """DEMAND_QUANTILE_CALIBRATION_PERIODS, else the grain's default."""
    return settings.quantile_calibration_periods or CALIBRATION_PERIODS[grain]


@dataclass(frozen=True)
class Known:
    """Rows whose actuals are known (the validation window's and the backtest's), with the
    backtest model's raw quantiles: what each rolling window is drawn from."""

    raw: np.ndarray  # rows × levels
    y: np.ndarray
    scale: np.ndarray
    horizon: np.ndarray
    target: np.ndarray  # datetime64: the target period's first day

    def offsets(self, at, window, levels, counts: bool) -> dict[str, list[float]]:
        """Each horizon's offsets from the rows known at ``at`` (the origin: targets up to
        it) whose target lies in the ``window`` (a timedelta) before it; where that holds
        fewer than WINDOW_ROWS of a horizon's rows, its latest WINDOW_ROWS known rows."""
        known = self.target <= np.datetime64(at)
        start = np.datetime64(at) - np.timedelta64(window)
        out = {}
        for h in np.unique(self.horizon):
            rows = known & (self.horizon == h)
            if not rows.any():
                continue
            # the window, or the latest WINDOW_ROWS known rows where it holds fewer
            latest = np.sort(self.target[rows])[::-1]
            start_h = min(start, latest[min(WINDOW_ROWS, len(latest)) - 1] - np.timedelta64(1))
            rows &= self.target > start_h
            if rows.any():
                out[str(int(h))] = [
                    offset(self.raw[rows, j], self.y[rows], self.scale[rows], level, counts)
                    for j, level in enumerate(levels)
                ]
        return out


def correlation(rows: pd.DataFrame, units: np.ndarray, levels, horizon: int) -> np.ndarray:
    """The horizons' dependence: normal scores of where each actual fell in its calibrated
    distribution, correlated across the horizons of one series and origin."""
    u = np.clip(qmath.pit(levels, units, rows["label"].to_numpy()), 1e-3, 1 - 1e-3)
    frame = rows[["store_id", "product_id", "origin", "horizon"]].assign(z=norm.ppf(u))
    wide = frame.pivot_table(
        index=["store_id", "product_id", "origin"], columns="horizon", values="z", observed=True
    ).reindex(columns=range(1, horizon + 1))
    return qmath.dependence(wide.to_numpy())


def residual_quantiles(residual, horizons, levels, minimum: int = 1) -> dict[int, np.ndarray]:
    """Horizon → the empirical quantiles at ``levels`` of a baseline's residuals (actual
    minus forecast) there; a horizon with fewer than ``minimum`` rows is left out."""
    residual, horizons = np.asarray(residual, dtype=np.float64), np.asarray(horizons)
    return {
        int(h): np.quantile(residual[horizons == h], levels)
        for h in np.unique(horizons)
        if (horizons == h).sum() >= minimum
    }


def empirical_interval(point, horizons, by_h, levels, counts) -> np.ndarray:
    """A baseline's interval (rows × levels): its ``point`` forecast plus its residual
    quantiles at each row's horizon (none known: zero), within the support, increasing."""
    zero = np.zeros(len(levels))
    shift = np.array([by_h.get(int(h), zero) for h in np.asarray(horizons)]).reshape(
        -1, len(levels)
    )
    return qmath.non_crossing(qmath.support(np.asarray(point)[:, None] + shift, counts))


def baseline_interval(valid, test, history_valid, history_test, grain, levels, counts):
    """The seasonal naive's empirical interval for the backtest rows (rows × levels)."""
    name = next(n for n in baselines.for_grain(grain) if n.startswith("seasonal_naive"))
    make = baselines.for_grain(grain)[name]
    residual = valid["label"].to_numpy() - make.fit(history_valid).predict(valid)
    point = make.fit(history_test).predict(test)
    by_h = residual_quantiles(residual, valid["horizon"].to_numpy(), levels)
    return empirical_interval(point, test["horizon"].to_numpy(), by_h, levels, counts)


def short_history_residuals(
    contract: FeatureContract, valid: pd.DataFrame, levels, horizon: int
) -> dict[str, str]:
    """The contract's ``short_history_residuals``: for every horizon 1..``horizon``, the
    empirical quantiles of the short-history baseline's residuals on the validation window
    (see the module docstring for which rows); empty without a rule."""
    rule = contract.short_history_rule
    if rule is None or valid.empty:
        return {}
    residual = valid["label"].to_numpy(np.float64) - baseline_units(valid[rule.feature])
    short = contract.short_history(valid[rule.age_feature])
    rows = short if short.sum() >= SHORT_HISTORY_ROWS else np.ones(len(valid), dtype=bool)
    horizons = valid["horizon"].to_numpy()[rows]
    by_h = residual_quantiles(residual[rows], horizons, levels, HORIZON_ROWS)
    pooled = np.quantile(residual[rows], levels)
    table = {
        str(h): [round(float(v), 4) for v in by_h.get(h, pooled)] for h in range(1, horizon + 1)
    }
    return {"short_history_residuals": json.dumps(table, sort_keys=True)}


def short_history_scores(contract: FeatureContract, test: pd.DataFrame, alone, served, levels):
    """On the backtest's short-history rows: wQL and central-interval coverage of the
    baseline interval they are served (``served``) and of the quantile model's (``alone``).
    Empty without such rows or the interval."""
    rule = contract.short_history_rule
    if rule is None or contract.short_history_interval is None:
        return {}
    short = contract.short_history(test[rule.age_feature])
    if not short.any():
        return {}
    label = test["label"].to_numpy()[short]
    out = {}
    for name, units in (("short_history", served), ("short_history_model", alone)):
        numbers = quantile_scores(label, units[short], levels)
        out[f"{name}_wql"] = numbers["wql"]
        if "interval_coverage" in numbers:
            out[f"{name}_interval_coverage"] = numbers["interval_coverage"]
    return out


def median_as_point(label, units: np.ndarray, levels) -> dict[str, float]:
    """The P50 scored as a point forecast: its bias (its WAPE is ``wql_p50``: twice the
    pinball loss at 0.5 is the absolute error). WAPE rewards a median, which on slow movers
    is often 0 and sums below what sells: the service's point forecast stays the mean, and
    this says what the median would have scored instead (docs/benchmarks.md). Empty without
    a 0.5 level."""
    if 0.5 not in levels:
        return {}
    median = np.asarray(units, dtype=float).reshape(len(label), -1)[:, list(levels).index(0.5)]
    return {"p50_bias": scores(label, median)["bias"]}


def lead_time_coverage(rows: pd.DataFrame, units: np.ndarray, contract, periods: int):
    """Coverage of the L-period total on the backtest: for each series and origin whose
    horizons 1..L are all there, its simulated quantiles against the actual total, and the
    same for the (wrong) sum of per-period quantiles beside it."""
    levels = contract.quantiles
    frame = rows[["store_id", "product_id", "origin", "horizon", "label"]].reset_index(drop=True)
    frame = frame[frame["horizon"] <= periods]
    keys = frame.groupby(["store_id", "product_id", "origin"], observed=True)["horizon"]
    complete = keys.transform("nunique") == periods
    frame = frame[complete].sort_values(["store_id", "product_id", "origin", "horizon"])
    if frame.empty:
        return {}
    per = units[frame.index.to_numpy()].reshape(-1, periods, len(levels))
    actual = frame["label"].to_numpy().reshape(-1, periods).sum(axis=1)
    quant = qmath.lead_time_quantiles(
        levels, per, contract.dependence, levels, contract.quantile_counts
    )
    summed = per.sum(axis=1)
    out = {"lead_time_periods": float(periods), "lead_time_series": float(len(actual))}
    for j, level in enumerate(levels):
        out[f"lead_time_coverage_{level_key(level)}"] = float(np.mean(actual <= quant[:, j]))
        out[f"lead_time_summed_coverage_{level_key(level)}"] = float(
            np.mean(actual <= summed[:, j])
        )
    if len(levels) >= 2:
        inside = (quant[:, 0] <= actual) & (actual <= quant[:, -1])
        out["lead_time_interval_coverage"] = float(inside.mean())
    return out


@dataclass
class Intervals:
    """What training's quantile step made: the models, the contract's facts, the numbers."""

    levels: tuple[float, ...]
    backtest_model: object
    served: object
    extra: dict[str, str]
    metrics: dict[str, float]
    by_horizon: pd.DataFrame
    by_category: pd.DataFrame
    units: np.ndarray  # the backtest rows' quantiles (rows × levels)
    # the CatBoost fits' own seconds (``quantile fit``, ``quantile refit``), inside the step's
    fit_seconds: dict[str, float]

    def contract(self, contract: FeatureContract) -> FeatureContract:
        return replace(contract, extra={**contract.extra, **self.extra})

    def log_models(self, info, example: pd.DataFrame) -> None:
        """Both quantile models inside the version's model directory (the paths the contract
        names), beside the backtest point model: they travel with every copy."""
        import mlflow
        from mlflow.models import infer_signature

        from training.tracking import _version

        requirements = [f"catboost=={_version('catboost')}", f"pandas=={_version('pandas')}"]
        for path, model in ((MODEL_PATH, self.served), (BACKTEST_MODEL_PATH, self.backtest_model)):
            with tempfile.TemporaryDirectory() as tmp:
                mlflow.catboost.save_model(
                    model,
                    str(Path(tmp) / path),
                    signature=infer_signature(example, model.predict(example)),
                    pip_requirements=requirements,
                )
                mlflow.MlflowClient().log_model_artifacts(
                    info.model_id, str(Path(tmp) / path), artifact_path=path
                )


def run(
    settings: Settings,
    contract: FeatureContract,
    x: pd.DataFrame,
    frame: pd.DataFrame,
    split,
    history: Callable[[pd.DataFrame], pd.DataFrame],
    schedule,
    scale: np.ndarray | None,
    progress=print,
) -> Intervals | None:
    """Fit, calibrate and backtest the quantile model, log its numbers and calibration plot
    to the active MLflow run, refit it on every closed day; None when DEMAND_QUANTILES is
    empty."""
    import mlflow

    from training.tracking import log_tables

    levels = qmath.parse_levels(settings.quantiles)
    if not levels:
        return None
    y = frame["label"]
    ones = np.ones(len(frame))
    scale = ones if scale is None else np.asarray(scale, dtype=np.float64)
    counts = are_counts(y)
    params = model_params(settings, levels)

    def part(mask):
        return scale[mask.to_numpy()] if contract.target_scale else None

    started = time.perf_counter()
    backtest_model = demand_model.fit(
        x[split.train],
        y[split.train],
        x[split.valid],
        y[split.valid],
        contract.categorical,
        params,
        verbose=0,
        train_levels=part(split.train),
        valid_levels=part(split.valid),
    )
    fit_seconds = {"quantile fit": time.perf_counter() - started}
    valid = frame[split.valid]
    v, t = split.valid.to_numpy(), split.test.to_numpy()
    raw_valid = np.asarray(backtest_model.predict(x[split.valid])).reshape(v.sum(), -1)
    raw_test = np.asarray(backtest_model.predict(x[split.test])).reshape(t.sum(), -1)
    offsets = calibrate(
        raw_valid,
        valid["label"].to_numpy(float),
        scale[v],
        valid["horizon"].to_numpy(),
        levels,
        counts,
    )
    extra = {
        "quantiles": ",".join(qmath.label(level) for level in levels),
        "quantile_model": MODEL_PATH,
        "backtest_quantile_model": BACKTEST_MODEL_PATH,
        "quantile_offsets": json.dumps(offsets, sort_keys=True),
        "quantile_counts": "true" if counts else "false",
        "quantile_device": DEVICE,
    }
    # a short-history row's quantiles: its baseline's interval, as served (with_quantiles)
    extra.update(short_history_residuals(contract, valid, levels, schedule.horizon))
    calibrated = replace(contract, extra={**contract.extra, **extra})
    scale_of = frame[contract.target_scale].to_numpy() if contract.target_scale else None
    rule = contract.short_history_rule

    def units(raw, mask, offsets_at, fallback=True):
        """The rows' quantiles in units, each origin's rows with ``offsets_at(origin)``."""
        rows = frame.loc[mask]
        values = scale_of[mask.to_numpy()] if scale_of is not None else ones[mask.to_numpy()]
        horizons = rows["horizon"].to_numpy()
        out = np.empty(raw.shape)
        for origin, index in rows.groupby("origin", sort=True).indices.items():
            at = {**offsets, **offsets_at(origin)}
            out[index] = calibrated.quantile_units(raw[index], values[index], horizons[index], at)
        if rule is None or not fallback:
            return out
        return calibrated.with_fallback_quantiles(
            out, rows[rule.age_feature], rows[rule.feature], horizons
        )

    valid_units = units(raw_valid, split.valid, lambda origin: offsets)
    dependence = correlation(valid, valid_units, levels, schedule.horizon)
    extra["quantile_dependence"] = json.dumps(np.round(dependence, 4).tolist())

    # the backtest calibrates as nightly retraining does: each origin on the latest known rows
    test = frame[split.test].assign(category=frame.loc[split.test, "category"].fillna("?"))
    known = Known(
        raw=np.vstack([raw_valid, raw_test]),
        y=np.concatenate([valid["label"].to_numpy(float), test["label"].to_numpy(float)]),
        scale=np.concatenate([scale[v], scale[t]]),
        horizon=np.concatenate([valid["horizon"].to_numpy(), test["horizon"].to_numpy()]),
        target=np.concatenate([valid["target"].to_numpy(), test["target"].to_numpy()]),
    )
    periods = calibration_periods(settings, schedule.calendar.grain.value)
    window = pd.Timedelta(days=periods * schedule.calendar.days)

    def rolling(origin):
        return known.offsets(origin, window, levels, counts)

    test_units = units(raw_test, split.test, rolling)
    model_units = units(raw_test, split.test, rolling, fallback=False)
    # the served model's: the window at the latest known target
    served_offsets = {**offsets, **rolling(known.target.max())}
    extra["quantile_offsets"] = json.dumps(served_offsets, sort_keys=True)
    extra["quantile_calibration_periods"] = str(periods)
    calibrated = replace(contract, extra={**contract.extra, **extra})

    grain = schedule.calendar.grain.value
    base = baseline_interval(
        valid,
        test,
        history(valid),
        history(test),
        grain,
        levels,
        counts,
    )
    predictions = {"model": test_units, BASELINE: base}
    by_horizon = quantile_breakdown(test, predictions, levels, "horizon")
    by_category = quantile_breakdown(test, predictions, levels, "category")
    metrics = {
        **quantile_scores(test["label"], test_units, levels),
        **{f"{BASELINE}_{k}": v for k, v in quantile_scores(test["label"], base, levels).items()},
        **lead_time_coverage(test, test_units, calibrated, min(LEAD_TIME, schedule.horizon)),
        **short_history_scores(calibrated, test, model_units, test_units, levels),
        **median_as_point(test["label"], test_units, levels),
    }
    for table, by in ((by_horizon, "horizon"), (by_category, "category")):
        for _, r in table.iterrows():
            prefix = "" if r["predictor"] == "model" else f"{r['predictor']}_"
            suffix = f"h{r[by]}" if by == "horizon" else str(r[by])
            for name in ("wql", "interval_coverage"):
                if name in r:
                    metrics[f"{prefix}{name}_{suffix}"] = r[name]

    mlflow.log_params(
        {
            "quantiles": extra["quantiles"],
            "quantile_device": DEVICE,
            "quantile_calibration_periods": periods,
        }
    )
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if pd.notna(v)})
    log_tables({"quantiles_by_horizon": by_horizon, "quantiles_by_category": by_category})
    calibration_plot(test, predictions, levels, schedule.unit)
    progress(
        f"quantiles {extra['quantiles']} on {DEVICE}: wQL {metrics['wql']:.3f} "
        f"(baseline interval {metrics[f'{BASELINE}_wql']:.3f})"
        + (
            f", central interval coverage {metrics['interval_coverage']:.2f}"
            if "interval_coverage" in metrics
            else ""
        )
    )

    # the refit is the quantile step's peak: what the backtest fit and the calibration left
    # goes back first, and it fits on x itself, not a copy of every row (docs/benchmarks.md)
    memory.release()
    started = time.perf_counter()
    served = demand_model.refit(
        demand_model.rows_of(x, split.refit),
        demand_model.rows_of(y, split.refit),
        contract.categorical,
        params,
        backtest_model.tree_count_,
        verbose=0,
        levels=part(split.refit),
    )
    fit_seconds["quantile refit"] = time.perf_counter() - started
    return Intervals(
        levels,
        backtest_model,
        served,
        extra,
        metrics,
        by_horizon,
        by_category,
        test_units,
        fit_seconds,
    )


def calibration_plot(test: pd.DataFrame, predictions: dict, levels, unit: str) -> None:
    """Observed share of actuals at or below each level, against the level; one panel per
    predictor's horizons too. A calibrated forecast lies on the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    y = test["label"].to_numpy()
    horizons = test["horizon"].to_numpy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (name, q) in enumerate(predictions.items()):
        observed = [np.mean(y <= q[:, j]) for j in range(len(levels))]
        axes[0].plot(levels, observed, marker="o", color=f"C{i}", label=name)
        if len(levels) >= 2:
            cover = [
                np.mean(
                    (q[horizons == h, 0] <= y[horizons == h])
                    & (y[horizons == h] <= q[horizons == h, -1])
                )
                for h in np.unique(horizons)
            ]
            axes[1].plot(np.unique(horizons), cover, marker="o", color=f"C{i}", label=name)
    axes[0].plot([0, 1], [0, 1], "k:", lw=1)
    axes[0].set_xlabel("quantile level")
    axes[0].set_ylabel("share of actuals at or below")
    axes[0].set_title("Calibration on the backtest")
    if len(levels) >= 2:
        axes[1].axhline(levels[-1] - levels[0], color="k", ls=":", lw=1)
        axes[1].set_xlabel(f"horizon ({unit}s ahead)")
        axes[1].set_ylabel("central interval coverage")
        axes[1].set_title(f"P{levels[0] * 100:g}–P{levels[-1] * 100:g} coverage by horizon")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/calibration.png")
    plt.close(fig)
