"""The monitoring summary: the few figures `demand monitor` leaves for the service's /metrics.

The service may not import the monitoring package (it runs in the image without it), so
the file's format lives here, in the base both share: one small JSON document, written
whole and swapped in, read whole. Absent or unreadable means "nothing monitored yet".
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILE = "summary.json"


@dataclass
class Summary:
    night: str  # the last closed day monitored
    model_name: str
    model_version: str | None  # the version whose forecasts were scored and profiled
    live_wape: float | None  # rolling window, the version's scored forecasts
    backtest_wape: float | None
    ratio: float | None  # live / backtest: the headline
    live_wape_by_horizon: dict[str, float] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)  # per feature (and "prediction")
    drifted: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    scored_rows: int = 0

    def to_json(self) -> str:
        return json.dumps(finite(asdict(self)), indent=2, sort_keys=True)


def finite(value):
    """NaN and infinities as null, through dicts and lists: JSON has neither, and
    Prometheus readers skip nulls (the monitor summary; training's reference profile)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def path(monitoring_dir: Path) -> Path:
    return monitoring_dir / FILE


def write(monitoring_dir: Path, summary: Summary) -> Path:
    monitoring_dir.mkdir(parents=True, exist_ok=True)
    target = path(monitoring_dir)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(summary.to_json())
    tmp.replace(target)  # a reader sees the old summary or the new one
    return target


def read(monitoring_dir: Path) -> Summary | None:
    try:
        data = json.loads(path(monitoring_dir).read_text())
        return Summary(**data)
    except (OSError, ValueError, TypeError):
        return None
