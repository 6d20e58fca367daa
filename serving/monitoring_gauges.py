"""Live accuracy and drift on /metrics, from the summary `demand monitor` leaves.

The service never computes these (the monitoring package is not in its image): it reads
the small summary file (``demand.monitor_summary``) when it starts, on ``POST /reload``
and on each alias poll, and re-reads only a file that changed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from demand import monitor_summary

_gauges: dict[str, Any] | None = None
_lock = threading.Lock()


def _made() -> dict[str, Any]:
    """The gauges, created once per process (prometheus_client refuses a second one of a
    name; tests build the service more than once)."""
    global _gauges
    with _lock:
        if _gauges is None:
            from prometheus_client import Gauge

            def gauge(name: str, text: str, labels=()):
                return Gauge(name, text, list(labels), multiprocess_mode="mostrecent")

            _gauges = {
                "wape": gauge(
                    "demand_live_wape",
                    "Live WAPE of the scored forecasts over the rolling window, per horizon "
                    '("all": every horizon)',
                    ["version", "horizon"],
                ),
                "backtest": gauge(
                    "demand_backtest_wape", "The version's backtest WAPE", ["version"]
                ),
                "ratio": gauge(
                    "demand_live_backtest_ratio", "Live WAPE / backtest WAPE", ["version"]
                ),
                "psi": gauge(
                    "demand_feature_psi",
                    "PSI of a feature (or the predictions) against the version's reference",
                    ["feature"],
                ),
                "drifted": gauge("demand_drifted_features", "Features and feeds drifted"),
                "alerts": gauge("demand_monitoring_alerts", "Alerts of the last monitoring run"),
            }
        return _gauges


class MonitoringGauges:
    def __init__(self, monitoring_dir: Path):
        self.monitoring_dir = monitoring_dir
        self._seen: float | None = None

    def refresh(self) -> bool:
        """Set the gauges from the summary when it changed; whether it was read."""
        path = monitor_summary.path(self.monitoring_dir)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return False
        if stamp == self._seen:
            return False
        summary = monitor_summary.read(self.monitoring_dir)
        if summary is None:
            return False
        self._seen = stamp
        gauges = _made()
        version = str(summary.model_version or "")
        if summary.live_wape is not None:
            gauges["wape"].labels(version, "all").set(summary.live_wape)
        for horizon, value in summary.live_wape_by_horizon.items():
            gauges["wape"].labels(version, horizon).set(value)
        if summary.backtest_wape is not None:
            gauges["backtest"].labels(version).set(summary.backtest_wape)
        if summary.ratio is not None:
            gauges["ratio"].labels(version).set(summary.ratio)
        for feature, value in summary.psi.items():
            gauges["psi"].labels(feature).set(value)
        gauges["drifted"].set(len(summary.drifted))
        gauges["alerts"].set(len(summary.alerts))
        return True
