"""Alerts: pure rules from the night's figures to what a person must look at.

Each rule takes numbers and settings and returns alerts carrying their numbers, as the
registry's gates do; ``demand monitor`` exits non-zero when any fires and the nightly
cycle posts them (JSON) to its ``--notify`` URLs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from demand.settings import Settings


@dataclass(frozen=True)
class Alert:
    kind: str  # accuracy | drift | feed | skew
    message: str
    figures: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy_alerts(history: pd.DataFrame, version: str | None, settings: Settings) -> list[Alert]:
    """Live WAPE above the backtest's × (1 + margin) on each of the last N nights."""
    if version is None or history.empty:
        return []
    lines = history[
        (history["model_version"].astype(str) == str(version)) & (history["horizon"] == 0)
    ]
    lines = lines.sort_values("night").tail(settings.monitor_wape_nights)
    if len(lines) < settings.monitor_wape_nights:
        return []
    limit = 1 + settings.monitor_wape_margin
    above = lines["ratio"].notna() & (lines["ratio"] > limit)
    if not above.all():
        return []
    last = lines.iloc[-1]
    return [
        Alert(
            "accuracy",
            f"v{version}: live WAPE {last['live_wape']:.3f} is {last['ratio']:.2f} × the "
            f"backtest's {last['backtest_wape']:.3f}, above {limit:.2f} × on "
            f"{len(lines)} nights in a row",
            {
                "version": str(version),
                "nights": [str(n) for n in lines["night"]],
                "ratios": [round(float(r), 4) for r in lines["ratio"]],
                "limit": limit,
            },
        )
    ]


def drift_alerts(table: pd.DataFrame, feeds: pd.DataFrame, version: str | None) -> list[Alert]:
    """One alert per drifted feature (or predictions) and per stopped feed."""
    alerts = []
    for row in table[table["drifted"]].itertuples() if len(table) else ():
        alerts.append(
            Alert(
                "drift",
                f"v{version}: {row.feature} drifted ({row.why})",
                {
                    "feature": row.feature,
                    "psi": None if pd.isna(row.psi) else round(float(row.psi), 4),
                    "null_rate_reference": round(float(row.null_rate_reference), 4),
                    "null_rate_now": None
                    if pd.isna(row.null_rate_now)
                    else round(float(row.null_rate_now), 4),
                },
            )
        )
    for row in feeds[feeds["stopped"]].itertuples() if len(feeds) else ():
        alerts.append(
            Alert(
                "feed",
                f"feed {row.feed} stopped: its newest row is {row.age_days:.1f} days behind "
                f"the sales feed (at training {row.age_days_reference or 0:.1f}, new rows "
                f"every {row.cadence_days:.1f} days)",
                {"feed": row.feed, "age_days": float(row.age_days)},
            )
        )
    return alerts


def skew_alerts(findings: Sequence[Mapping]) -> list[Alert]:
    """Served-vs-offline mismatches outside stale views, one alert per feature.

    ``findings``: what a skew check returns, one mapping per feature with at least
    ``feature`` and ``mismatches`` (and ``rows``, the sample compared)."""
    return [
        Alert(
            "skew",
            f"{f['feature']}: {f['mismatches']} of {f.get('rows', '?')} served values differ "
            "from the offline recomputation",
            dict(f),
        )
        for f in findings
        if f.get("mismatches")
    ]
