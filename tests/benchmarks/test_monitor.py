"""`make bench-monitor`'s world, small: forecasts published as `demand batch` publishes them
(quantile columns included) and a version whose run holds the backtest figures under the
names training logs, so the night it times is the night with quantiles."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from benchmarks.monitor import LAST, publish, register, write_sales
from demand.settings import get_settings
from monitoring import accuracy, ledger
from serving.batch import COLUMNS

SERIES = 40
HORIZON = 7
QUANTILES = ["units_p10", "units_p50", "units_p90"]


def test_the_benchmarks_night_scores_quantiles_beside_the_backtests(tmp_path, clean_demand_env):
    settings = get_settings(data_dir=tmp_path).model_copy(
        update={"mlflow_tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "horizon": HORIZON}
    )
    rng = np.random.default_rng(0)
    write_sales(settings, SERIES, 30, LAST, rng)
    for k in range(10, 0, -1):
        publish(settings, SERIES, HORIZON, LAST - timedelta(days=k), rng)
    register(settings, HORIZON)

    published = pd.read_parquet(sorted(settings.forecast_dir.glob("origin=*.parquet"))[0])
    assert list(published.columns) == [*COLUMNS, *QUANTILES, "published_at"]
    bands = published[QUANTILES].to_numpy()
    assert (np.diff(bands, axis=1) >= 0).all() and (bands >= 0).all()
    assert (bands == np.floor(bands)).all()  # whole units, as served for count data

    update = ledger.update(settings, progress=lambda _: None)
    measured = accuracy.measure(
        settings, update.last_closed, accuracy.backtest_metrics(settings, ["1"])
    )
    assert measured.no_quantiles == []
    table = measured.quantiles
    assert set(table["horizon"]) == {accuracy.ALL, *range(1, HORIZON + 1)}
    # every backtest figure the night sets beside a live one is found in the run: over all
    # horizons each level's and the interval's; by horizon the interval's coverage and wQL
    overall = table[table["horizon"] == accuracy.ALL]
    backtest = [c for c in table.columns if c.startswith("backtest_")]
    assert overall[backtest].notna().all().all(), overall[backtest]
    by_horizon = table[table["horizon"] != accuracy.ALL]
    assert by_horizon[["backtest_interval_coverage", "backtest_wql"]].notna().all().all()
