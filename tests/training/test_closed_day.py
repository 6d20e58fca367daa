"""Training's labels end at the last closed day (``closed_day_lag_hours``), as serving's origins."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from demand.settings import get_settings
from training.dataset import origins_and_labels

HISTORY = pd.DataFrame(
    {
        "store_id": "S0",
        "product_id": "P0",
        "date": pd.date_range("2024-01-01", "2024-03-01", freq="D"),
        "units": 1.0,
    }
)


def _last_target(now: datetime, lag_hours: float = 0.0) -> str:
    settings = get_settings(
        horizon=7, warmup_days=0, origin_every_days=1, closed_day_lag_hours=lag_hours
    )
    rows = origins_and_labels(HISTORY, settings, now=now)
    return f"{rows['target'].max():%Y-%m-%d}"


def test_a_day_cut_at_noon_is_no_label():
    # the export was cut at noon of 1 March: its half day of sales is not a label
    assert _last_target(datetime(2024, 3, 1, 12, tzinfo=UTC)) == "2024-02-29"
    assert _last_target(datetime(2024, 3, 2, tzinfo=UTC)) == "2024-03-01"  # closed at midnight


def test_the_lag_delays_the_close():
    assert _last_target(datetime(2024, 3, 2, 0, 30, tzinfo=UTC), lag_hours=1) == "2024-02-29"
    assert _last_target(datetime(2024, 3, 2, 1, tzinfo=UTC), lag_hours=1) == "2024-03-01"
