import numpy as np
import pandas as pd
import pytest

from training.baselines import MovingAverage, SeasonalNaive
from training.metrics import breakdown, metric_key, poisson_floor_wape, scores

DAYS = pd.date_range("2024-01-01", periods=35)


@pytest.fixture
def history():
    units = np.arange(35, dtype=float)  # day i sold i units
    return pd.DataFrame({"store_id": "S", "product_id": "P", "date": DAYS, "units": units})


def _rows(origin_day: int, horizons):
    origin = DAYS[origin_day]
    return pd.DataFrame(
        {
            "store_id": "S",
            "product_id": "P",
            "origin": origin,
            "target": [origin + pd.Timedelta(days=h) for h in horizons],
        }
    )


def test_seasonal_naive_is_the_same_weekday_a_week_before(history):
    rows = _rows(30, [1, 3, 7])
    assert list(SeasonalNaive(7).fit(history).predict(rows)) == [24, 26, 30]


def test_seasonal_naive_never_looks_past_the_origin(history):
    rows = _rows(20, [8])  # 8 days ahead: last week's weekday is after the origin
    # the moving average of days 0..20 stands in
    assert SeasonalNaive(7).fit(history).predict(rows)[0] == pytest.approx(np.mean(range(21)))


def test_moving_average_uses_the_28_days_up_to_the_origin(history):
    rows = _rows(30, [1, 5])
    assert list(MovingAverage(28).fit(history).predict(rows)) == [np.mean(range(3, 31))] * 2


def test_scores_by_hand():
    s = scores([2, 0, 4], [1, 1, 4])
    assert s["mae"] == pytest.approx(2 / 3)
    assert s["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert s["wape"] == pytest.approx(2 / 6)
    assert s["bias"] == pytest.approx(0.0)


def test_breakdown_and_keys():
    rows = pd.DataFrame({"label": [1.0, 3.0], "horizon": [1, 2]})
    table = breakdown(rows, {"model": np.array([1.0, 2.0])}, "horizon")
    assert list(table["wape"]) == [0.0, pytest.approx(1 / 3)]
    assert metric_key("model", "wape") == "wape"
    assert metric_key("seasonal_naive", "wape") == "seasonal_naive_wape"
    assert metric_key("model", "wape", "h3") == "wape_h3"


def test_poisson_floor():
    # for Poisson(1) the median is 1 and E|Y - 1| = 2/e
    assert poisson_floor_wape(np.ones(10), np.ones(10)) == pytest.approx(2 / np.e)
