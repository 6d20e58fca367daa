"""Any volume, any unit: the noise floor, the baselines, the metrics, the gates and the
plots on heavy-tailed sales (most series a few units a week, a few at 10^5 to 10^7) and
on kilograms.

Values are checked against hand-computed cases. Memory is checked with tracemalloc
against a bound that an array of rows × the largest count (the old noise floor's,
53 GiB on a real export) would exceed by orders of magnitude; time is not checked.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from registry.gates import Backtest, staging_gate
from training import baselines
from training.metrics import (
    NOT_COUNTS,
    breakdown,
    floor_note,
    poisson_absolute_error,
    poisson_floor_wape,
    scores,
)

WEEKS = pd.date_range("2021-01-07", periods=60, freq="7D")  # Thursdays
ORIGIN = 55  # the week the backtest rows' origin is; targets 56..59
HORIZONS = (1, 2, 3, 4)


def _dense_floor(y_true, expected) -> float:
    """The old implementation (a row × count matrix), the reference on small counts."""
    mean = np.clip(np.asarray(expected, dtype=float), 1e-9, None)
    top = int(np.ceil(mean.max() + 10 * np.sqrt(mean.max()) + 10))
    k = np.arange(top + 1)[None, :]
    pmf = poisson.pmf(k, mean[:, None])
    median = poisson.median(mean)[:, None]
    return float((pmf * np.abs(k - median)).sum() / np.abs(np.asarray(y_true, float)).sum())


def test_the_floor_by_hand():
    # Poisson(1): median 1, E|Y-1| = 2·P(0) = 2/e; Poisson(2): median 2,
    # E|Y-2| = 2·(2·P(0) + P(1)) = 8/e²; a mean below ln 2 has median 0, so E|Y| = mean
    assert poisson_absolute_error([1.0, 2.0, 0.5]) == pytest.approx(
        [2 / math.e, 8 / math.e**2, 0.5], rel=1e-12
    )
    assert poisson_floor_wape([1, 3, 0], [1.0, 2.0, 0.5]) == pytest.approx(
        (2 / math.e + 8 / math.e**2 + 0.5) / 4, rel=1e-12
    )


def test_the_floor_is_the_old_dense_sum_on_small_counts():
    rng = np.random.default_rng(7)
    mean = np.concatenate([rng.gamma(0.6, 8.0, 1_500), [0.0, math.log(2), 1e-9, 1.0, 60.0]])
    labels = rng.poisson(mean)
    assert poisson_floor_wape(labels, mean) == pytest.approx(_dense_floor(labels, mean), rel=1e-9)


@pytest.mark.parametrize("mean", [1e5, 2e5, 1e6, 1e7])
def test_the_floor_at_large_volumes_is_the_normal_limit(mean):
    # Poisson(mean) → Normal(mean, mean) and E|Y - median| → sqrt(2·mean/π)
    expected = math.sqrt(2 * mean / math.pi)
    assert poisson_absolute_error([mean])[0] == pytest.approx(expected, rel=1e-5)


def test_the_floor_does_not_apply_to_fractional_units():
    kilograms = [0.5, 12.25, 3.0]
    assert math.isnan(poisson_floor_wape(kilograms, [1.0, 12.0, 3.0]))
    assert floor_note(kilograms) == NOT_COUNTS
    assert floor_note([1.0, 12.0, 3.0]) == ""
    assert "not applicable" in floor_note([0.0, 0.0])


def _series(store: str, product: str, category: str, units) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": store,
            "product_id": product,
            "category": category,
            "date": WEEKS,
            "units": np.asarray(units, dtype=float),
        }
    )


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """Weekly sales: 200 small series, and four large or fractional ones with hand-made values."""
    rng = np.random.default_rng(3)
    week = np.arange(len(WEEKS))
    small = [
        _series(f"S{i % 20}", f"P{i}", "small", rng.poisson(rng.gamma(1.0, 3.0), len(WEEKS)))
        for i in range(200)
    ]
    large = [
        _series("S0", "BIG", "large", np.full(len(WEEKS), 1e6)),
        _series("S0", "HUGE", "large", np.full(len(WEEKS), 1e7)),
        _series("S1", "RISING", "large", 1e5 + 1000 * week),
        # kilograms: 12.50, 12.75, 13.00, 13.25, 12.50…; any four weeks average 12.875
        _series("S2", "KG", "loose", 12.5 + 0.25 * (week % 4)),
    ]
    return pd.concat(small + large, ignore_index=True)


@pytest.fixture(scope="module")
def rows(history) -> pd.DataFrame:
    """Backtest rows: every pair, origin week 55, 1 to 4 weeks ahead, labelled."""
    pairs = history[["store_id", "product_id", "category"]].drop_duplicates()
    frame = pairs.merge(pd.DataFrame({"horizon": HORIZONS}), how="cross")
    frame["origin"] = WEEKS[ORIGIN]
    frame["target"] = WEEKS[ORIGIN] + pd.to_timedelta(frame["horizon"] * 7, unit="D")
    labels = history.rename(columns={"date": "target", "units": "label"})
    return frame.merge(labels, on=["store_id", "product_id", "category", "target"])


def _predict(history, rows, grain="week") -> dict[str, np.ndarray]:
    sales = history[["store_id", "product_id", "date", "units"]]
    return {n: b.fit(sales).predict(rows) for n, b in baselines.for_grain(grain).items()}


def _pair(rows, predictions, product):
    at = (rows["product_id"] == product).to_numpy()
    return {n: list(p[at]) for n, p in predictions.items()}, list(rows.loc[at, "label"])


def test_the_weekly_baselines_by_hand_at_any_volume_and_unit(history, rows):
    predictions = _predict(history, rows)
    assert list(predictions) == ["seasonal_naive_52w", "moving_average_4w", "naive_1w"]
    for product, units in (("BIG", 1e6), ("HUGE", 1e7)):
        values, labels = _pair(rows, predictions, product)
        assert labels == [units] * 4
        assert values == {name: [units] * 4 for name in predictions}
    values, labels = _pair(rows, predictions, "RISING")  # 1e5 + 1000·week
    assert labels == [1e5 + 1000 * (ORIGIN + h) for h in HORIZONS]
    assert values["naive_1w"] == [1e5 + 1000 * ORIGIN] * 4
    assert values["moving_average_4w"] == [1e5 + 1000 * (ORIGIN - 1.5)] * 4
    # the same week last year: 52 weeks before each target, all at or before the origin
    assert values["seasonal_naive_52w"] == [1e5 + 1000 * (ORIGIN + h - 52) for h in HORIZONS]
    values, labels = _pair(rows, predictions, "KG")
    assert labels == [12.5 + 0.25 * ((ORIGIN + h) % 4) for h in HORIZONS]
    assert values["moving_average_4w"] == pytest.approx([12.875] * 4)
    assert values["naive_1w"] == [12.5 + 0.25 * (ORIGIN % 4)] * 4


def test_the_metrics_by_hand_at_any_volume_and_unit(history, rows):
    predictions = _predict(history, rows)
    rising = rows["product_id"] == "RISING"
    # naive misses by 1000·h: 10,000 in all, of 4e5 + 1000·(4·55 + 10) units sold
    assert scores(rows.loc[rising, "label"], predictions["naive_1w"][rising])["wape"] == (
        pytest.approx(10_000 / 630_000, rel=1e-12)
    )
    kg = rows["product_id"] == "KG"  # labels 13.25, 12.5, 12.75, 13.0 against 12.875 each
    assert scores(rows.loc[kg, "label"], predictions["moving_average_4w"][kg])["wape"] == (
        pytest.approx((0.375 + 0.375 + 0.125 + 0.125) / 51.5, rel=1e-12)
    )
    table = breakdown(rows, predictions, "category").set_index(["predictor", "category"])
    # the constant series are forecast exactly: the large category's error is RISING's
    assert table.loc[("naive_1w", "large"), "wape"] == pytest.approx(
        10_000 / (4 * (1e6 + 1e7) + 630_000), rel=1e-12
    )
    counts = rows["category"] != "loose"
    floor = poisson_floor_wape(rows.loc[counts, "label"], predictions["naive_1w"][counts])
    assert 0 < floor < 1
    # one series in kilograms: the whole backtest has no Poisson floor, and says why
    assert math.isnan(poisson_floor_wape(rows["label"], predictions["naive_1w"]))
    assert floor_note(rows["label"]) == NOT_COUNTS


def test_the_daily_baselines_at_ten_million_units():
    days = pd.date_range("2024-01-01", periods=40)
    history = pd.DataFrame(
        {"store_id": "S", "product_id": "P", "date": days, "units": np.full(40, 1e7)}
    )
    rows = pd.DataFrame(
        {"store_id": "S", "product_id": "P", "origin": days[35], "target": days[36:40]}
    )
    predictions = _predict(history, rows, "day")
    assert list(predictions) == ["seasonal_naive_7d", "moving_average_28d", "naive_1d"]
    assert all(list(p) == [1e7] * 4 for p in predictions.values())


def test_the_gate_at_any_volume(history, rows):
    """WAPE is a ratio: the gate reads the same whether the units are 3 or 10^7 or kilograms."""
    predictions = _predict(history, rows)
    wape = {n: scores(rows["label"], p)["wape"] for n, p in predictions.items()}
    model = 0.5 * min(wape.values())
    assert staging_gate(Backtest(model, wape), []).passed
    assert not staging_gate(Backtest(2 * model, wape), []).passed


def test_no_step_allocates_rows_times_the_largest_count(history, rows):
    """The baselines, the metrics and the floor on 800 rows whose largest label is 10^7: a
    rows × max-count array of float64 would be 65 GB; the bound is 32 MiB (4 MiB measured)."""
    counts = rows[rows["category"] != "loose"].reset_index(drop=True)
    assert len(counts) * counts["label"].max() * 8 > 1000 * 32 * 2**20
    tracemalloc.start()
    try:
        predictions = _predict(history, counts)
        scores(counts["label"], predictions["naive_1w"])
        breakdown(counts, predictions, "horizon")
        floor = poisson_floor_wape(counts["label"], predictions["moving_average_4w"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert math.isfinite(floor)
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_the_floor_alone_stays_within_a_few_arrays_of_the_rows():
    """400 rows up to 2·10^5 units: the floor's peak is a few float64 arrays of the rows."""
    rng = np.random.default_rng(11)
    mean = np.concatenate([rng.gamma(0.5, 4.0, 390), rng.uniform(1e5, 2e5, 10)])
    labels = rng.poisson(mean)
    tracemalloc.start()
    try:
        poisson_floor_wape(labels, mean)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # rows × max count would be 400 × 2e5 × 8 bytes = 640 MB
    assert peak < 1 * 2**20, f"peak {peak / 2**20:.2f} MiB"


def test_the_plots_at_any_volume_and_unit(history, rows, tmp_path):
    """The backtest's plots, logged to a real MLflow run, with 10^7 units and kilograms."""
    import mlflow

    from training import tracking

    predictions = _predict(history, rows)
    predictions = {"model": predictions["moving_average_4w"], **predictions}
    by_horizon = breakdown(rows, predictions, "horizon")
    importance = pd.Series([3.0, 1.0], index=["units_mean_4w", "planned_price"])
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("volumes", artifact_location=tmp_path.as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        tracking.log_plots(rows, predictions, by_horizon, importance, "week")
    plots = {p.name for p in (tmp_path / run.info.run_id / "artifacts" / "plots").iterdir()}
    assert plots == {"forecast_vs_actual.png", "error_by_horizon.png", "feature_importance.png"}
