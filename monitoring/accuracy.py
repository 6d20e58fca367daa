"""Live accuracy from the forecast ledger, with the metric code of the backtests.

WAPE, bias and MAE by horizon, category, store, model version and target week come from
``training.metrics.breakdown`` over the ledger's scored rows (excluded ones left out), so
a live figure and a backtest figure mean the same thing. The window is the last
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
from training.metrics import breakdown, scores

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
    rows, excluded = ledger.window(settings, start, night)
    by = {name: _breakdown(rows, name) for name in BREAKDOWNS}
    overall = scores(rows["label"], rows["forecast"]) if len(rows) else {}
    versus = _versus(rows, backtests)
    versions = sorted(rows["model_version"].unique().tolist(), key=_version_key)
    return Accuracy(
        night=night,
        window_start=start,
        rows=len(rows),
        excluded=excluded,
        overall=overall,
        by=by,
        versus=versus,
        headline_version=versions[-1] if versions else None,
        missing_backtest=[v for v in versions if not backtests.get(v)],
    )


def _breakdown(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """``training.metrics.breakdown`` of the live forecasts by one column. A categorical
    column is grouped by its codes (pandas would also group its unused categories) and
    its labels put back."""
    predictions = {"live": rows["forecast"].to_numpy(dtype=float)}
    rows = rows[[name, "label"]]  # what breakdown reads: its copies stay small
    column = rows[name]
    if isinstance(column.dtype, pd.CategoricalDtype):
        coded = rows.assign(**{name: column.cat.codes})
        frame = breakdown(coded, predictions, name)
        if len(frame):
            frame[name] = column.cat.categories[frame[name].to_numpy()]
    else:
        frame = breakdown(rows, predictions, name)
    return frame.drop(columns="predictor", errors="ignore")


def _version_key(version: str):
    return (0, int(version), "") if str(version).isdigit() else (1, 0, str(version))


def _versus(rows: pd.DataFrame, backtests: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per version and horizon (ALL: every horizon), live WAPE beside the backtest's."""
    records = []
    rows = rows[["model_version", "horizon", "label", "forecast"]]
    for version, group in rows.groupby("model_version", observed=True, sort=True):
        metrics = backtests.get(str(version), {})
        live = _breakdown(group, "horizon")
        parts = [(ALL, scores(group["label"], group["forecast"])["wape"], metrics.get("wape"))]
        parts += [
            (int(r["horizon"]), r["wape"], metrics.get(f"wape_h{int(r['horizon'])}"))
            for _, r in live.iterrows()
        ]
        for horizon, live_wape, backtest in parts:
            records.append(
                {
                    "model_version": str(version),
                    "horizon": horizon,
                    "live_wape": float(live_wape),
                    "backtest_wape": float("nan") if backtest is None else float(backtest),
                    "rows": int(
                        len(group) if horizon == ALL else (group["horizon"] == horizon).sum()
                    ),
                }
            )
    frame = pd.DataFrame(
        records, columns=["model_version", "horizon", "live_wape", "backtest_wape", "rows"]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["ratio"] = frame["live_wape"] / frame["backtest_wape"]
    return frame


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
