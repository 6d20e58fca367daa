"""One night's monitoring: the ledger, live accuracy, drift, alerts, the summary for /metrics.

``demand monitor`` and the nightly cycle call ``run``. Its findings stay beside the
ledger (``last.json``, the drift table) for ``demand report``, and the few figures the
service exposes go to the summary file (``demand.monitor_summary``).

Served-vs-offline skew plugs in through ``skew``: a callable taking the settings and
returning one mapping per feature (``feature``, ``mismatches``, ``rows``); None means
not checked, and the report says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from demand import monitor_summary
from demand.settings import Settings
from monitoring import accuracy, alerts, drift, ledger

Progress = Callable[[str], None]
SkewCheck = Callable[[Settings], Sequence[Mapping]]
LAST = "last.json"
DRIFT_TABLE = "drift.parquet"
FEED_TABLE = "feeds.parquet"


@dataclass
class Result:
    update: ledger.LedgerUpdate
    accuracy: accuracy.Accuracy | None
    drift: drift.Drift
    skew: list[dict] | None  # None: not checked
    alerts: list[alerts.Alert] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def nothing_scored(self) -> bool:
        return self.accuracy is None or self.accuracy.rows == 0


def run(settings: Settings, progress: Progress = print, skew: SkewCheck | None = None) -> Result:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    update = ledger.update(settings, progress)
    seconds["ledger"] = time.perf_counter() - started
    if update.note:
        progress(update.note)
    else:
        progress(
            f"ledger: {len(update.periods_new)} period(s) new, "
            f"{len(update.periods_rescored)} re-scored, {update.rows_changed:,} row(s) changed"
        )

    started = time.perf_counter()
    measured = None
    history = accuracy.read_history(settings)
    if update.last_closed is not None and ledger.partitions(settings):
        versions = _versions(settings)
        backtests = accuracy.backtest_metrics(settings, versions)
        measured = accuracy.measure(settings, update.last_closed, backtests)
        if measured.rows:
            history = accuracy.record(settings, measured)
    seconds["accuracy"] = time.perf_counter() - started

    started = time.perf_counter()
    found = drift.tonight(settings, progress=progress)
    if found.skipped:
        progress(f"drift skipped: {found.skipped}")
    seconds["drift"] = time.perf_counter() - started

    skew_findings = [dict(f) for f in skew(settings)] if skew is not None else None

    fired = []
    if measured is not None and measured.rows:
        fired += alerts.accuracy_alerts(history, measured.headline_version, settings)
    fired += alerts.drift_alerts(found.table, found.feeds, found.version)
    fired += alerts.skew_alerts(skew_findings or [])
    result = Result(update, measured, found, skew_findings, fired, seconds)
    _keep(settings, result)
    return result


def _versions(settings: Settings) -> list[str]:
    frame = ledger.read(settings, columns=["model_version"])
    return sorted({str(v) for v in frame["model_version"].unique()})


def _keep(settings: Settings, result: Result) -> None:
    """The night's findings for the report, and the summary for the service's /metrics."""
    folder = settings.monitoring_dir
    folder.mkdir(parents=True, exist_ok=True)
    result.drift.table.to_parquet(folder / DRIFT_TABLE, index=False)
    if len(result.drift.feeds):
        result.drift.feeds.to_parquet(folder / FEED_TABLE, index=False)
    else:
        (folder / FEED_TABLE).unlink(missing_ok=True)
    measured = result.accuracy
    headline = measured.headline if measured is not None and measured.rows else None
    by_horizon = {}
    if headline is not None:
        lines = measured.versus[measured.versus["model_version"] == measured.headline_version]
        by_horizon = {
            str(int(r.horizon)): float(r.live_wape) for r in lines.itertuples() if r.horizon
        }
    last = {
        "night": str(result.update.last_closed) if result.update.last_closed else None,
        "ledger": {
            "periods_new": result.update.periods_new,
            "periods_rescored": result.update.periods_rescored,
            "rows_changed": result.update.rows_changed,
            "unforecast_actuals": result.update.unforecast_actuals,
            "migrated_files": result.update.migrated,
            "note": result.update.note,
        },
        "excluded": measured.excluded if measured is not None else {},
        "missing_backtest": measured.missing_backtest if measured is not None else [],
        "drift_version": result.drift.version,
        "drift_skipped": result.drift.skipped,
        "drift_rows": result.drift.rows,
        "drift_keys": result.drift.keys,
        "drift_note": result.drift.note,
        "skew": result.skew,
        "alerts": [a.to_dict() for a in result.alerts],
    }
    (folder / LAST).write_text(json.dumps(last, indent=2, default=str))
    monitor_summary.write(
        folder,
        monitor_summary.Summary(
            night=last["night"] or "",
            model_name=settings.model_name,
            model_version=measured.headline_version if measured is not None else None,
            live_wape=None if headline is None else float(headline["live_wape"]),
            backtest_wape=None if headline is None else float(headline["backtest_wape"]),
            ratio=None if headline is None else float(headline["ratio"]),
            live_wape_by_horizon=by_horizon,
            psi=result.drift.psi(),
            drifted=result.drift.drifted,
            alerts=[a.message for a in result.alerts],
            scored_rows=measured.rows if measured is not None else 0,
        ),
    )


def read_last(settings: Settings) -> dict:
    try:
        return json.loads((settings.monitoring_dir / LAST).read_text())
    except (OSError, ValueError):
        return {}


def read_table(settings: Settings, name: str) -> pd.DataFrame:
    path = settings.monitoring_dir / name
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()
