"""Live accuracy from the forecast ledger, with the metric code of the backtests.

WAPE, bias and MAE by horizon, category, store, model version and target week come from
``training.metrics.scores_from_sums``, the function the backtests' ``scores`` computes
through, over the ledger's counted rows (excluded ones left out), so a live figure and
a backtest figure mean the same thing; the sums are taken in DuckDB. The window is the last
``monitor_window_days`` of closed targets: the rolling four weeks by default.

Each version's live WAPE is set beside what its backtest promised for the same horizons
(the run's ``wape_h{h}`` metrics); the ratio live / backtest is the headline. One line per
night, version and horizon is kept in ``accuracy_history.parquet`` (a night run again
replaces its own lines): the report plots it, and the alert counts the nights in a row
above the margin from it.

A version published with quantiles gets, by horizon, the live coverage of each level and
of the central interval and its wQL (per level and their mean), from the ledger's pinball
losses and coverage counts through ``training.metrics.quantile_scores_from_sums``, the
function the backtest's ``quantile_scores`` computes through; beside them the backtest's
own figures for the same horizons (the run's ``interval_coverage_h{h}`` and ``wql_h{h}``;
per level the run logs its figures over all horizons, ``coverage_p10`` and ``wql_p10``).
A version whose published forecasts carry no quantile is listed as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from demand import quantiles as qmath
from demand.settings import Settings
from monitoring import ledger
from training.metrics import SUMS, level_key, quantile_scores_from_sums, scores_from_sums

HISTORY = "accuracy_history.parquet"
BREAKDOWNS = ("horizon", "category", "store_id", "model_version", "week")
ALL = 0  # the history's horizon for every horizon together


@dataclass
class Accuracy:
    night: date
    window_start: date
    rows: int  # scored rows in the window
    excluded: dict[str, int]  # rows left out, per reason (censored, inactive, …)
    overall: dict[str, float]
    by: dict[str, pd.DataFrame]  # breakdown name → frame (metrics per value)
    versus: pd.DataFrame  # version, horizon, live_wape, backtest_wape, ratio, rows
    headline_version: str | None
    missing_backtest: list[str] = field(default_factory=list)  # versions without metrics
    # per version and horizon (ALL too): live quantile figures beside the backtest's
    quantiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    no_quantiles: list[str] = field(default_factory=list)  # versions published without

    @property
    def headline(self) -> pd.Series | None:
        rows = self.versus[
            (self.versus["model_version"] == self.headline_version)
            & (self.versus["horizon"] == ALL)
        ]
        return None if rows.empty else rows.iloc[0]


def measure(settings: Settings, night: date, backtests: dict[str, dict[str, float]]) -> Accuracy:
    """Accuracy of the forecasts whose target falls in the window ending at ``night``.

    ``backtests``: per model version, its run's metrics (``wape``, ``wape_h1`` …).
    """
    start = night - timedelta(days=settings.monitor_window_days - 1)
    groupings = {name: [name] for name in BREAKDOWNS}
    groupings["version_horizon"] = ["model_version", "horizon"]
    groupings["overall"] = []
    sums, excluded = ledger.sums(settings, start, night, groupings)
    by = {name: _scored(sums[name], [name]) for name in BREAKDOWNS}
    overall = _scored(sums["overall"], [])
    rows = int(overall["rows"].sum()) if len(overall) else 0
    versus = _versus(sums["model_version"], sums["version_horizon"], backtests)
    versions = sorted(by["model_version"]["model_version"].astype(str), key=_version_key)
    quantiles = _quantiles(ledger.quantile_sums(settings, start, night), backtests)
    with_quantiles = set(quantiles["model_version"]) if len(quantiles) else set()
    return Accuracy(
        night=night,
        window_start=start,
        rows=rows,
        excluded=excluded,
        overall=(
            {m: float(overall.iloc[0][m]) for m in ("mae", "rmse", "wape", "bias")} if rows else {}
        ),
        by=by,
        versus=versus,
        headline_version=versions[-1] if versions else None,
        missing_backtest=[v for v in versions if not backtests.get(v)],
        quantiles=quantiles,
        no_quantiles=[v for v in versions if v not in with_quantiles],
    )


def _scored(sums: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each group's metrics from its sums, by ``training.metrics.scores_from_sums``."""
    sums = sums[sums["rows"] > 0] if len(sums) else sums
    metrics = [scores_from_sums(**{k: r[k] for k in SUMS}) for _, r in sums.iterrows()]
    frame = pd.concat([sums[[*keys, "rows"]].reset_index(drop=True), pd.DataFrame(metrics)], axis=1)
    return frame.reindex(columns=[*keys, "rows", "mae", "rmse", "wape", "bias"])


def _version_key(version: str):
    return (0, int(version), "") if str(version).isdigit() else (1, 0, str(version))


def _versus(
    by_version: pd.DataFrame, by_version_horizon: pd.DataFrame, backtests: dict
) -> pd.DataFrame:
    """Per version and horizon (ALL: every horizon), live WAPE beside the backtest's."""
    overall = _scored(by_version, ["model_version"]).assign(horizon=ALL)
    per_horizon = _scored(by_version_horizon, ["model_version", "horizon"])
    frame = pd.concat([overall, per_horizon], ignore_index=True)
    frame["model_version"] = frame["model_version"].astype(str)
    frame["horizon"] = frame["horizon"].astype(int)

    def backtest(row) -> float:
        metrics = backtests.get(row["model_version"], {})
        key = "wape" if row["horizon"] == ALL else f"wape_h{row['horizon']}"
        return float(metrics.get(key, np.nan))

    frame = frame.rename(columns={"wape": "live_wape"})
    frame["backtest_wape"] = frame.apply(backtest, axis=1) if len(frame) else []
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["ratio"] = frame["live_wape"] / frame["backtest_wape"]
    frame = frame.sort_values(["model_version", "horizon"]).reset_index(drop=True)
    return frame[["model_version", "horizon", "live_wape", "backtest_wape", "rows", "ratio"]]


def _quantiles(sums: pd.DataFrame, backtests: dict) -> pd.DataFrame:
    """Per version, levels and horizon (ALL: every horizon), the live quantile scores from
    the ledger's sums beside the backtest's (NaN where the run logged no such figure)."""
    if sums.empty:
        return pd.DataFrame(columns=["model_version", "horizon", "levels", "rows"])
    sums = sums.copy()
    sums["model_version"] = sums["model_version"].astype(str)
    sums["horizon"] = sums["horizon"].astype(int)
    every = sums.drop(columns="horizon").groupby(
        ["model_version", ledger.LEVELS], as_index=False, observed=True
    )
    sums = pd.concat([every.sum(min_count=1).assign(horizon=ALL), sums], ignore_index=True)
    records = []
    # records, not tuples: a level such as 0.025 names a column no identifier can
    for row in sums.to_dict("records"):
        levels = qmath.parse_levels(row[ledger.LEVELS])
        keys = [level_key(v) for v in levels]
        inside = row.get("inside")
        live = quantile_scores_from_sums(
            levels,
            rows=int(row["rows"]),
            absolute_actual=float(row["absolute_actual"]),
            pinball=[float(row[f"pinball_{k}"]) for k in keys],
            below=[int(row[f"below_{k}"]) for k in keys],
            inside=None if inside is None or pd.isna(inside) else int(inside),
        )
        metrics = backtests.get(row["model_version"], {})
        suffix = "" if row["horizon"] == ALL else f"_h{row['horizon']}"
        record = {
            "model_version": row["model_version"],
            "horizon": row["horizon"],
            "levels": row[ledger.LEVELS],
            "rows": int(row["rows"]),
        }
        central = qmath.central(levels)
        if central is not None:
            record["nominal_interval"] = central[1] - central[0]
        for name in ["interval_coverage", "wql"] + [
            f"{figure}_{k}" for figure in ("coverage", "wql") for k in keys
        ]:
            if name in live:
                record[f"live_{name}"] = live[name]
                record[f"backtest_{name}"] = float(metrics.get(f"{name}{suffix}", np.nan))
        records.append(record)
    frame = pd.DataFrame(records)
    return frame.sort_values(["model_version", "levels", "horizon"], key=_sort_key).reset_index(
        drop=True
    )


def _sort_key(column: pd.Series) -> pd.Series:
    if column.name == "model_version":
        return column.map(_version_key)
    return column


def quantile_lines(measured: Accuracy, version: str | None = None) -> dict[str, str]:
    """A version's live quantile figures beside the backtest's, one line per horizon (the
    headline version by default): what `demand monitor` prints."""
    version = str(version or measured.headline_version)
    if version in measured.no_quantiles:
        return {f"v{version} quantiles": "no quantiles (published without quantile columns)"}
    table = measured.quantiles
    rows = table[table["model_version"] == version] if len(table) else table
    if rows.empty:
        return {}
    lines: dict[str, str] = {}
    for row in rows.to_dict("records"):
        levels = qmath.parse_levels(row["levels"])
        keys = [level_key(v) for v in levels]
        where = "all horizons" if row["horizon"] == ALL else f"h{row['horizon']}"
        parts = []
        central = qmath.central(levels)
        if central is not None:
            parts.append(
                f"P{central[0] * 100:g}–P{central[1] * 100:g} coverage "
                + _pair(row, "interval_coverage", 2, f", nominal {row['nominal_interval']:.2f}")
            )
        parts.append(f"wQL {_pair(row, 'wql', 3)}")
        lines[f"v{version} {where}"] = ", ".join(parts)
        if row["horizon"] == ALL:
            lines[f"v{version} level coverage"] = ", ".join(
                f"P{v * 100:g} {_pair(row, f'coverage_{k}', 2)}"
                for v, k in zip(levels, keys, strict=True)
            )
    return lines


def _pair(row: dict, name: str, digits: int, more: str = "") -> str:
    """``live (backtest …)``; the backtest's NaN as "—"."""
    backtest = row.get(f"backtest_{name}", np.nan)
    shown = "—" if pd.isna(backtest) else f"{backtest:.{digits}f}"
    return f"{row[f'live_{name}']:.{digits}f} (backtest {shown}{more})"


def backtest_metrics(settings: Settings, versions) -> dict[str, dict[str, float]]:
    """Each version's backtest metrics from its MLflow run (empty: the version or run is gone)."""
    from demand.tracking import connect

    client = connect(settings)
    found: dict[str, dict[str, float]] = {}
    for version in versions:
        try:
            run_id = client.get_model_version(settings.model_name, str(version)).run_id
            found[str(version)] = dict(client.get_run(run_id).data.metrics)
        except Exception:  # MLflow raises its own errors for a missing version or run
            found[str(version)] = {}
    return found


def history_path(settings: Settings) -> Path:
    return settings.monitoring_dir / HISTORY


def record(settings: Settings, accuracy: Accuracy) -> pd.DataFrame:
    """Keep tonight's live/backtest lines in the history (replacing any of the same night)."""
    path = history_path(settings)
    lines = accuracy.versus.assign(night=accuracy.night)
    old = pd.read_parquet(path) if path.exists() else lines.iloc[0:0]
    old = old[pd.to_datetime(old["night"]).dt.date != accuracy.night]
    history = pd.concat([old, lines], ignore_index=True) if len(old) else lines
    history = history.sort_values(["night", "model_version", "horizon"]).reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    history.to_parquet(tmp, index=False)
    tmp.replace(path)
    return history


def read_history(settings: Settings) -> pd.DataFrame:
    path = history_path(settings)
    if not path.exists():
        return pd.DataFrame(
            columns=["night", "model_version", "horizon", "live_wape", "backtest_wape", "ratio"]
        )
    return pd.read_parquet(path)
