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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from demand.settings import Settings
from monitoring import ledger
from training.metrics import SUMS, scores_from_sums

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
